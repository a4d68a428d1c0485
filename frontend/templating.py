"""Jinja2 set up for the pages: autoescape always on, a few display filters."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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


@functools.lru_cache(maxsize=1024)
def _ticked(text: str) -> Markup:
    escaped = str(escape(text))
    return Markup(_BACKTICKED.sub(r"<code>\1</code>", escaped))  # noqa: S704 - escaped above


def _ticks(value: Any) -> Markup:
    """Plain text with `name` set as <code>name</code>: the explanations are
    written once for the page and the JSON alike. Escaped first, so only
    the <code> tags added here are markup. Most of them are the same on
    every page view, so each distinct text is worked out once."""
    return _ticked(value if isinstance(value, str) else str(value))


@functools.lru_cache(maxsize=4096)
def _when_text(value: str) -> str:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _when(value: Any) -> str:
    """`2026-11-25T09:30:00.123Z` → `2026-11-25 09:30:00 UTC`; anything else as it is.
    A message's time is shown on every view of its page: each is worked out once."""
    return _when_text(value) if isinstance(value, str) else ""


PAGES = ("index.html", "_messages.html", "spread.html", "error.html")


def create_templates(static_versions: dict[str, str] | None = None) -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        # Every template is HTML and every value is escaped unless marked
        # safe: a message holding `<script>` is shown, never run.
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        # Templates are part of the image: compiled once, never re-read, and
        # kept in a plain dict (there are a handful).
        auto_reload=False,
        cache_size=-1,
    )
    env.filters["ms"] = _ms
    env.filters["when"] = _when
    env.filters["ticks"] = _ticks
    # `static_url("style.css")` → /static/style.css?v=<hash of its bytes>.
    versions = static_versions or {}

    def static_url(name: str) -> str:
        version = versions.get(name)
        return f"/static/{name}?v={version}" if version else f"/static/{name}"

    env.globals["static_url"] = static_url
    templates = Jinja2Templates(env=env)
    # Compiled at start, not by the first visitor of each page.
    for name in PAGES:
        env.get_template(name)
    return templates


@dataclass(slots=True)
class Fragment:
    """A piece of a page rendered before the page, given to it as `name`.

    `kept` holds pieces rendered before, by `key`: one found there is used as
    it is; one rendered is stored there for the next view.
    """

    name: str
    template: str
    context: dict[str, Any]
    kept: dict[Any, Markup] = field(default_factory=dict)
    key: Any = None


def render(
    templates: Jinja2Templates,
    request: Request,
    identity: PodIdentity,
    name: str,
    context: dict[str, Any],
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    fragments: Sequence[Fragment] = (),
) -> HTMLResponse:
    """The page `name` and its fragments, rendered in this one call."""
    # Straight to the compiled template: Starlette's TemplateResponse adds a
    # context-processor pass and a debug hook for its TestClient, unused here.
    env = templates.env
    values = {"request": request, "identity": identity, "path": request.scope["path"]} | context
    for part in fragments:
        html = part.kept.get(part.key)
        if html is None:
            # Rendered with autoescape, like a page: markup to place as it is.
            html = Markup(env.get_template(part.template).render(part.context))  # noqa: S704
            part.kept[part.key] = html
        values[part.name] = html
    html_page = env.get_template(name).render(values)
    return HTMLResponse(html_page, status_code=status_code, headers=headers)
