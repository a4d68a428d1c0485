"""The guestbook's two backend conversations: read a page of messages, write one.

Both return plain results for the routes to render as HTML or JSON; neither
raises for a backend that is down or refuses: that is a result too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from common.contract import IDEMPOTENCY_KEY_PATTERN
from common.logging import request_id_var
from common.tracing import current_trace_id
from frontend.app_state import AppState
from frontend.backend_client import (
    BackendClient,
    BackendReply,
    BackendUnavailable,
    outcome_unknown,
)
from frontend.listing_cache import CachedListing
from frontend.pods import PodInfo
from frontend.route_builder import build_route
from frontend.route_model import Route

PAGE_SIZE = 20
_INFO_TIMEOUT = httpx.Timeout(1.0)
IDEMPOTENCY_KEY_SHAPE = re.compile(IDEMPOTENCY_KEY_PATTERN)

_HOP_WORDS = {
    "frontend": "this frontend pod has no free connection to the backend",
    "name": "the backend's name did not resolve",
    "address": "nothing accepted a connection at the backend's address",
    "pod": "the backend pod did not answer",
    "data": "the backend's database is unavailable",
}


@dataclass(slots=True)
class Listing:
    messages: list[dict[str, Any]]
    next_before_id: int | None
    route: Route
    status: int = 200
    problem: str | None = None
    # The backend's answer the messages were read from, as ListingCache keeps
    # it: where the page finds their rendered list, or keeps it.
    cached: CachedListing | None = None


@dataclass(slots=True)
class Fetched:
    """One backend call for a page of messages: its outcome and the parsed body."""

    label: str
    outcome: BackendReply | BackendUnavailable
    payload: dict[str, Any] | None
    # The answering pod's details, when this frontend has learnt them already.
    pod: PodInfo | None = None
    cached: CachedListing | None = None


async def _pod_info(backend: BackendClient) -> dict[str, Any] | None:
    """A backend pod's /api/info; None when it did not answer in time.

    Asked beside the page, not on its way: the kept-alive connection just
    used most likely leads to the same pod, and if not, that pod is learnt.
    """
    try:
        info = await backend.request("GET", "/api/info", timeouts=_INFO_TIMEOUT)
        body = info.json() if info.status == 200 else None
    except BackendUnavailable:
        return None
    return body if isinstance(body, dict) else None


async def fetch_listing(
    app_state: AppState,
    before_id: int | None,
    forwarded: Mapping[str, str],
    written: int | None = None,
) -> Fetched:
    """The one backend call of a page view; a pod met for the first time is learnt later.

    `written` (the message a view highlights) picks which of the body's
    rendered lists the listing cache hands on with it.
    """
    params: dict[str, str | int] = {"limit": PAGE_SIZE}
    if before_id is not None:
        params["before_id"] = before_id
    label = "GET /api/messages?" + "&".join(f"{k}={v}" for k, v in params.items())
    backend = app_state.backend
    try:
        outcome = await backend.request("GET", "/api/messages", params=params, headers=forwarded)
    except BackendUnavailable as exc:
        return Fetched(label, exc, None)
    fetched = Fetched(label, outcome, None)
    try:
        # Parsed here rather than by the reply: the cache is asked once, and
        # the page's way never goes back into backend_client.
        if outcome.status == 200:
            fetched.cached = app_state.listings.lookup(outcome.body, written)
            body = fetched.cached.payload
        else:
            body = json.loads(outcome.body)
    except ValueError:
        fetched.outcome = outcome.not_json()
        return fetched
    fetched.payload = body if isinstance(body, dict) else None
    if outcome.status == 200:
        fetched.pod = app_state.pods.learn_soon(outcome.served_by, lambda: _pod_info(backend))
    return fetched


def _problem(outcome: BackendReply | BackendUnavailable) -> tuple[int, str]:
    """The page's status and banner for a listing that could not be shown."""
    if isinstance(outcome, BackendUnavailable):
        # The hop the route panel marks failed: the one the call broke at.
        return 503, f"The backend is unreachable: {_HOP_WORDS[outcome.hop]}."
    if outcome.status == 503:
        return 503, "The backend answered, but " + _HOP_WORDS["data"] + "."
    return 502, f"The backend answered {outcome.status} instead of the messages."


def listing_of(app_state: AppState, fetched: Fetched) -> Listing:
    """The route model and the messages of one fetch: no I/O."""
    outcome, payload = fetched.outcome, fetched.payload
    route = build_route(
        settings=app_state.settings,
        identity=app_state.identity,
        outcome=outcome,
        payload=payload,
        pod=fetched.pod,
        request_label=fetched.label,
        request_id=request_id_var.get(),
        trace_id=current_trace_id(),
    )
    listing = Listing(messages=[], next_before_id=None, route=route)
    if isinstance(outcome, BackendReply) and outcome.status == 200 and payload is not None:
        items = payload.get("items")
        listing.messages = (
            [m for m in items if isinstance(m, dict)] if isinstance(items, list) else []
        )
        next_before = payload.get("next_before_id")
        listing.next_before_id = next_before if isinstance(next_before, int) else None
        listing.cached = fetched.cached
        return listing
    listing.status, listing.problem = _problem(outcome)
    return listing


async def load_listing(
    app_state: AppState,
    before_id: int | None,
    forwarded: Mapping[str, str],
    written: int | None = None,
) -> Listing:
    """Fetch, then build: the page's data and its route panel, one way."""
    return listing_of(app_state, await fetch_listing(app_state, before_id, forwarded, written))


@dataclass(slots=True)
class WriteResult:
    outcome: Literal[
        "created", "invalid", "rate_limited", "key_reused", "unavailable", "unknown", "failed"
    ]
    status: int
    message_id: int | None = None
    written_by: str | None = None
    problem: str | None = None
    field_errors: dict[str, str] = field(default_factory=dict)
    retry_after: str | None = None


def _clean(msg: str) -> str:
    # Pydantic prefixes custom checks with "Value error, ": not for people.
    return msg.removeprefix("Value error, ")


def _field_errors(body: Mapping[str, Any]) -> tuple[dict[str, str], str | None]:
    fields: dict[str, str] = {}
    other: list[str] = []
    for detail in body.get("details") or []:
        if not isinstance(detail, dict):
            continue
        loc = [str(p) for p in detail.get("loc", []) if p != "body"]
        msg = _clean(str(detail.get("msg", "")))
        if loc and loc[0] in ("author", "text"):
            fields.setdefault(loc[0], msg)
        else:
            other.append(msg)
    problem = "; ".join(other) or (None if fields else str(body.get("message") or "invalid"))
    return fields, problem


async def write_message(
    app_state: AppState,
    author: str,
    text: str,
    idempotency_key: str,
    forwarded: Mapping[str, str],
) -> WriteResult:
    # A browser counts a line break as one character against the textarea's
    # maxlength, then sends it as CRLF: sent as LF, what fitted the form fits
    # the backend's limit.
    text = text.replace("\r\n", "\n")
    content = json.dumps({"author": author, "text": text}, ensure_ascii=False).encode()
    headers = {
        "Content-Type": "application/json",
        # The same key on a retry, or on the browser resubmitting this form,
        # makes the backend return the first result instead of a duplicate.
        "Idempotency-Key": idempotency_key,
        **forwarded,
    }
    try:
        reply = await app_state.backend.request(
            "POST", "/api/messages", content=content, headers=headers
        )
        body = reply.json()
    except BackendUnavailable as exc:
        if outcome_unknown(exc):
            # The form keeps its key: sending it again cannot save it twice.
            return WriteResult(
                "unknown",
                504,
                problem="The backend did not answer in time, so we cannot tell whether your"
                " message was saved. Send the form again: it is the same message to the"
                " backend, and it will not be saved twice.",
            )
        return WriteResult(
            "unavailable",
            503,
            problem=f"The message was not sent: the backend is unreachable ({exc.message}).",
        )
    body = body if isinstance(body, dict) else {}
    if reply.status == 201:
        message_id = body.get("id")
        return WriteResult(
            "created",
            201,
            message_id=message_id if isinstance(message_id, int) else None,
            written_by=reply.served_by,
        )
    if reply.status == 422:
        fields, problem = _field_errors(body)
        return WriteResult("invalid", 422, field_errors=fields, problem=problem)
    if reply.status == 429:
        retry_after = reply.headers.get("retry-after")
        return WriteResult(
            "rate_limited",
            429,
            problem="Too many messages from your address: "
            f"try again in {retry_after or 'a few'} s.",
            retry_after=retry_after,
        )
    if reply.status == 409:
        return WriteResult(
            "key_reused",
            409,
            problem="This form was already sent with other words. Check the list, then send again.",
        )
    if reply.status == 503:
        return WriteResult(
            "unavailable",
            503,
            problem="The message was not saved: the backend's database is unavailable. "
            "Try again shortly.",
        )
    return WriteResult(
        "failed", 502, problem=f"The message was not saved: the backend answered {reply.status}."
    )
