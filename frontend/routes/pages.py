"""The pages people look at: the guestbook with its route panel, and the spread view.

Plain HTML forms and links, no JavaScript. Writing follows
post/redirect/get: a message that was saved answers 303 to the list, so a
reload never posts twice; one that was not re-renders the form with what was
typed, the reason, and the same Idempotency-Key.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from common.contract import AUTHOR_MAX, MAX_ID, TEXT_MAX
from frontend import csrf
from frontend.app_state import AppState, AppStateDep
from frontend.charts import bar_chart, pod_colours
from frontend.forwarding import forwarded_for
from frontend.guestbook import (
    IDEMPOTENCY_KEY_SHAPE,
    Listing,
    load_listing,
    write_message,
)
from frontend.route_model import SERVICE_DOCS
from frontend.spread import DETAIL, HEADLINE, SpreadInputError, parse_n
from frontend.spread_limits import CLIENT_CLOSED, bounded_spread
from frontend.templating import Fragment, render

router = APIRouter(include_in_schema=False)

MessageId = Annotated[int | None, Query(ge=1, le=MAX_ID)]


def _new_key() -> str:
    return uuid.uuid4().hex


@dataclass(slots=True)
class FormState:
    author: str = ""
    text: str = ""
    # One per rendered form: the browser resubmitting it, or the frontend
    # retrying it, sends the same key, and the backend writes it once.
    idempotency_key: str = field(default_factory=_new_key)
    errors: dict[str, str] = field(default_factory=dict)


def _page(
    request: Request,
    app_state: AppState,
    listing: Listing,
    form: FormState,
    *,
    written: int | None = None,
    problem: str | None = None,
    status: int | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    token, cookie = csrf.issue(request, app_state.settings.csrf_cookie_secure)
    if cookie is not None:
        headers = {**(headers or {}), "set-cookie": cookie}
    fragments: tuple[Fragment, ...] = ()
    if listing.messages:
        # Rendered once per backend answer and `written`, kept with the answer.
        kept = listing.cached.rendered if listing.cached is not None else {}
        fragments = (
            Fragment(
                "message_list",
                "_messages.html",
                {"messages": listing.messages, "written": written},
                kept,
                written,
            ),
        )
    return render(
        app_state.templates,
        request,
        app_state.identity,
        "index.html",
        {
            "listing": listing,
            "message_list": None,
            "route": listing.route,
            "form": form,
            "csrf_field": csrf.FIELD_NAME,
            "csrf_token": token,
            "written": written,
            "problem": problem or listing.problem,
            # The backend's limits as `maxlength`, so a browser stops the
            # typing; the backend stays the one that decides.
            "author_max": AUTHOR_MAX,
            "text_max": TEXT_MAX,
            "backend_url": app_state.settings.backend_url,
            "docs": SERVICE_DOCS,
        },
        status_code=status or listing.status,
        headers=headers,
        fragments=fragments,
    )


@router.get("/")
async def index(
    request: Request, app_state: AppStateDep, before_id: MessageId = None, written: MessageId = None
) -> Response:
    listing = await load_listing(app_state, before_id, forwarded_for(request), written)
    return _page(request, app_state, listing, FormState(), written=written)


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""  # an upload is no answer


@router.post("/messages")
async def post_message(request: Request, app_state: AppStateDep) -> Response:
    async with request.form(max_files=0, max_fields=8) as form:
        state = FormState(author=_field(form, "author"), text=_field(form, "text"))
        key = _field(form, "idempotency_key")
        token = _field(form, csrf.FIELD_NAME)
    if IDEMPOTENCY_KEY_SHAPE.match(key):
        state.idempotency_key = key
    forwarded = forwarded_for(request)

    refused = csrf.problem(request, token)
    if refused is not None:
        listing = await load_listing(app_state, None, forwarded)
        problem = f"Not sent: {refused}. What you typed is kept below: send it again."
        return _page(request, app_state, listing, state, problem=problem, status=403)

    result = await write_message(
        app_state, state.author, state.text, state.idempotency_key, forwarded
    )
    if result.outcome == "created" and result.message_id is not None:
        target = f"/?written={result.message_id}#message-{result.message_id}"
        return RedirectResponse(target, status_code=303)
    if result.outcome == "key_reused":
        state.idempotency_key = _new_key()
    state.errors = result.field_errors
    listing = await load_listing(app_state, None, forwarded)
    headers = {"Retry-After": result.retry_after} if result.retry_after else None
    return _page(
        request,
        app_state,
        listing,
        state,
        problem=result.problem,
        status=result.status,
        headers=headers,
    )


@router.get("/messages")
async def messages_get() -> Response:
    # Where a failed post leaves the address bar; going there again by GET
    # just means "show me the guestbook".
    return RedirectResponse("/", status_code=303)


@router.get("/spread")
async def spread_page(request: Request, app_state: AppStateDep, n: str | None = None) -> Response:
    settings = app_state.settings
    context: dict[str, object] = {
        "n_value": n if n is not None else str(settings.spread_default),
        "spread_max": settings.spread_max,
        "backend_url": settings.backend_url,
        "headline": HEADLINE,
        "detail": DETAIL,
        "docs": SERVICE_DOCS,
        "spread": None,
        "charts": (),
        "error": None,
        "problem": None,
    }
    try:
        count = parse_n(n, settings.spread_default, settings.spread_max)
    except SpreadInputError as exc:
        context["error"] = str(exc)
        return render(
            app_state.templates,
            request,
            app_state.identity,
            "spread.html",
            context,
            status_code=422,
        )
    result = await bounded_spread(request, app_state, count)
    if result is None:
        return Response(status_code=CLIENT_CLOSED)
    colours = pod_colours(result.fresh.pods, result.kept_alive.pods)
    context |= {
        "n_value": str(count),
        "spread": result,
        "charts": (
            (
                result.fresh,
                bar_chart(
                    f"{count} requests, each on a new connection",
                    result.fresh.pods,
                    result.fresh.failed,
                    count,
                    colours,
                ),
            ),
            (
                result.kept_alive,
                bar_chart(
                    f"{count} requests on one kept-alive connection",
                    result.kept_alive.pods,
                    result.kept_alive.failed,
                    count,
                    colours,
                ),
            ),
        ),
    }
    status = 200
    if result.reached_nothing:
        status = 503
        context["problem"] = "The backend is unreachable: no request of either run was answered."
    return render(
        app_state.templates, request, app_state.identity, "spread.html", context, status_code=status
    )
