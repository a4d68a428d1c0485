"""Jinja2 set up for the pages: autoescape always on, a few display filters."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from common.identity import PodIdentity

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return (
        f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"
    )


_BACKTICKED = re.compile(r"`([^`]+)`")


def _ticks(value: Any) -> Markup:
    """Plain text with `name` set as <code>name</code>: the explanations are
    written once for the page and the JSON alike. Escaped first, so only
    the <code> tags added here are markup."""
    escaped = str(escape(value))
    return Markup(_BACKTICKED.sub(r"<code>\1</code>", escaped))  # noqa: S704 - escaped above


def _when(value: Any) -> str:
    """`2026-11-25T09:30:00.123Z` → `2026-11-25 09:30:00 UTC`; anything else as it is."""
    if not isinstance(value, str):
        return ""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def create_templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        # Every template is HTML and every value is escaped unless marked
        # safe: a message holding `<script>` is shown, never run.
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters["ms"] = _ms
    env.filters["when"] = _when
    env.filters["ticks"] = _ticks
    return Jinja2Templates(env=env)


def render(
    templates: Jinja2Templates,
    request: Request,
    identity: PodIdentity,
    name: str,
    context: dict[str, Any],
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    base = {"identity": identity, "path": request.url.path}
    return templates.TemplateResponse(
        request, name, base | context, status_code=status_code, headers=headers
    )
