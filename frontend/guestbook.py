"""The guestbook's two backend conversations: read a page of messages, write one.

Both return plain results for the routes to render as HTML or JSON; neither
raises for a backend that is down or refuses: that is a result too.
"""

from __future__ import annotations

import asyncio
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
from frontend.backend_client import BackendReply, BackendUnavailable, outcome_unknown
from frontend.listing_cache import ListingCache
from frontend.route_panel import Resolution, Route, build_route, literal_address, resolve

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
    # The backend's answer the messages were read from: the key under which
    # ListingCache keeps their rendered list.
    source: bytes | None = None


async def _call(app_state: AppState, method: str, path: str, **kwargs: Any) -> Any:
    try:
        return await app_state.backend.request(method, path, **kwargs)
    except BackendUnavailable as exc:
        return exc


async def _learn_pod(app_state: AppState, reply: BackendReply) -> None:
    """Ask /api/info once per new pod name, for its IP, node and database.

    Best effort and short: the kept-alive connection just used most likely
    leads to the same pod, and if it does not, that pod is learnt instead.
    """
    if app_state.pods.get(reply.served_by) is not None or not reply.served_by:
        return
    try:
        info = await app_state.backend.request("GET", "/api/info", timeouts=_INFO_TIMEOUT)
        body = info.json() if info.status == 200 else None
    except BackendUnavailable:
        return
    if isinstance(body, dict):
        app_state.pods.learn(body)


def _payload(outcome: BackendReply | BackendUnavailable, cache: ListingCache) -> tuple[Any, Any]:
    """The parsed body, or the outcome turned into a failure if it is not JSON."""
    if isinstance(outcome, BackendUnavailable):
        return outcome, None
    try:
        body = outcome.json(cache.payload if outcome.status == 200 else json.loads)
    except BackendUnavailable as exc:
        return exc, None
    return outcome, body if isinstance(body, dict) else None


async def load_listing(
    app_state: AppState, before_id: int | None, forwarded: Mapping[str, str]
) -> Listing:
    settings = app_state.settings
    params: dict[str, str | int] = {"limit": PAGE_SIZE}
    if before_id is not None:
        params["before_id"] = before_id
    label = "GET /api/messages?" + "&".join(f"{k}={v}" for k, v in params.items())
    call = _call(app_state, "GET", "/api/messages", params=params, headers=forwarded)
    host, port = settings.backend_host, settings.backend_port
    literal = literal_address(host)
    if literal is not None:
        # An address: nothing to look up, so no task to run beside the call.
        resolution = Resolution(host=host, port=port, addresses=[literal])
        raw = await call
    else:
        # The lookup is for the panel only (the client resolves on its own
        # when it connects), so it runs beside the call and adds no time to
        # the page. It runs on every page view: it is the lesson.
        resolution, raw = await asyncio.gather(
            resolve(host, port, settings.backend_connect_timeout_seconds), call
        )
    outcome, payload = _payload(raw, app_state.listings)
    if isinstance(outcome, BackendReply) and outcome.status == 200:
        await _learn_pod(app_state, outcome)
    route = build_route(
        settings=settings,
        identity=app_state.identity,
        resolution=resolution,
        outcome=outcome,
        payload=payload,
        pods=app_state.pods,
        request_label=label,
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
        listing.source = outcome.body
        return listing
    hop = route.failed_hop
    if isinstance(outcome, BackendUnavailable):
        listing.status = 503
        listing.problem = f"The backend is unreachable: {_HOP_WORDS.get(hop or 'pod')}."
    elif outcome.status == 503:
        listing.status = 503
        listing.problem = "The backend answered, but " + _HOP_WORDS["data"] + "."
    else:
        listing.status = 502
        listing.problem = f"The backend answered {outcome.status} instead of the messages."
    return listing


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
