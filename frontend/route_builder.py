"""Builds the route panel's model from one backend call: no I/O, no lookup.

Everything comes from the call's outcome: the connection it used (its
address, when it was opened, its age), the backend's `X-Served-By` and
`Server-Timing`, the body's cache fields, and the answering pod's details
when they were learnt already.
The words come from frontend/route_prose.py.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from common.identity import PodIdentity
from frontend.backend_address import BackendAddress, backend_address
from frontend.backend_client import Attempt, BackendReply, BackendUnavailable, CallTrace
from frontend.config import FrontendSettings
from frontend.pods import PodInfo
from frontend.route_model import DNS_DOCS, SERVICE_DOCS, VIRTUAL_IP_DOCS, Hop, Route, Timing
from frontend.route_prose import PlaceProse, any_place_prose, failure_words, place_prose
from frontend.runs_on import runs_on
from frontend.server_timing import parse_server_timing


def _what_happened(attempt: Attempt) -> str:
    if attempt.error and attempt.stage in ("pool", "connect"):
        return "could not connect"
    if attempt.error:
        return "the connection died" if attempt.new_connection else "the kept-alive connection died"
    if attempt.new_connection:
        return "a new connection"
    if attempt.connection_age_s is not None:
        return (
            f"a kept-alive connection, open {attempt.connection_age_s:.1f} s,"
            f" request {attempt.requests_on_connection} on it"
        )
    return "a kept-alive connection"


def _connection_detail(trace: CallTrace, attempt: Attempt) -> str:
    parts: list[str] = []
    if len(trace.attempts) > 1:
        first = trace.attempts[0]
        parts.append(f"first try: {_what_happened(first)}; retried once on a new connection")
    parts.append(_what_happened(attempt))
    if attempt.local_addr:
        parts.append(f"from {attempt.local_addr}")
    return "; ".join(parts)


def _resolved_when(resolved_at: float, now: float) -> str:
    clock = time.strftime("%H:%M:%S", time.gmtime(resolved_at))
    return f"{max(now - resolved_at, 0.0):.1f} s ago ({clock} UTC)"


def _name_hop(target: BackendAddress, words: PlaceProse, now: float) -> Hop:
    hop = Hop(
        key="name",
        title=words.name_title,
        value=f"{target.host}:{target.port}",
        detail="",
        explanation=words.name,
        link=DNS_DOCS,
        # No lookup on the page's path: the connection's own answer is shown.
        timings=[Timing("name lookup", None, note="none for this view")],
    )
    if target.literal:
        hop.detail = "`BACKEND_URL` holds an address: there is no name to look up"
        hop.explanation = any_place_prose().name_literal
        hop.timings = [Timing("name lookup", None, note="none")]
    elif target.address is not None and target.resolved_at is not None:
        hop.detail = (
            f"resolved to {target.address} when this connection was opened, "
            + _resolved_when(target.resolved_at, now)
        )
    else:
        hop.detail = "resolved as each new connection opens; none was opened for this view"
    return hop


def _data_hop(
    reply: BackendReply | None,
    payload: Mapping[str, Any],
    timings: Mapping[str, float],
    database_label: str,
) -> Hop:
    words = any_place_prose()
    hop = Hop(key="data", title="Data", value="", detail="", explanation="", link=SERVICE_DOCS)
    if reply is None:
        hop.state = "not reached"
        hop.value = "not reached"
        hop.explanation = words.data_not_reached
        return hop
    cache = payload.get("cache")
    if reply.status == 200 and cache == "hit":
        hop.value = "Redis (cache hit)"
        hop.detail = f"{database_label} was not asked"
        hop.timings = [Timing("Redis", timings.get("cache"))]
        hop.explanation = words.data_hit
    elif reply.status == 200 and cache == "miss":
        hop.value = f"{database_label} (Redis missed)"
        hop.detail = "read from the database, then stored in Redis for the next reader"
        hop.timings = [
            Timing("database", timings.get("db")),
            Timing("Redis", timings.get("cache")),
        ]
        hop.explanation = words.data_miss
    elif reply.status == 200:
        down = payload.get("cache_state") == "down"
        hop.value = database_label
        hop.detail = "Redis is down: served from the database" if down else "no Redis cache here"
        hop.timings = [Timing("database", timings.get("db"))]
        hop.explanation = words.data_direct
    elif _dependency_down(reply, payload):
        dependency = str(payload.get("dependency") or "database")
        hop.state = "failed"
        hop.value = database_label if dependency == "database" else dependency
        hop.error = f"the backend pod answered, but its {dependency} is unavailable"
        hop.explanation = words.data_unavailable
    else:
        hop.state = "not reached"
        hop.value = "not reached"
        hop.explanation = f"The backend answered {reply.status}, so no data came back."
    return hop


def _dependency_down(reply: BackendReply | None, payload: Mapping[str, Any]) -> bool:
    return (
        reply is not None
        and reply.status == 503
        and payload.get("error") == "dependency_unavailable"
    )


def _pod_hop(
    reply: BackendReply | None,
    payload: Mapping[str, Any],
    timings: Mapping[str, float],
    pod_info: PodInfo | None,
    words: PlaceProse,
) -> Hop:
    pod_name = reply.served_by if reply else None
    backend_ms = timings.get("app") if reply else None
    wire_ms = reply.trace.total_ms - backend_ms if reply and backend_ms is not None else None
    located = []
    if pod_info and pod_info.ip:
        located.append(pod_info.ip)
    if pod_info and pod_info.node:
        located.append(f"on node {pod_info.node}")
    hop = Hop(
        key="pod",
        title="Backend pod",
        value=pod_name or ("unknown" if reply else "not reached"),
        detail=" ".join(located),
        explanation=words.pod,
        link=SERVICE_DOCS,
        timings=[Timing("in the backend", backend_ms), Timing("network and queues", wire_ms)],
    )
    if reply is not None and reply.status >= 500 and not _dependency_down(reply, payload):
        hop.state = "failed"
        hop.error = f"answered {reply.status}"
    return hop


def _address_hop(
    trace: CallTrace, attempt: Attempt | None, target: BackendAddress, words: PlaceProse
) -> Hop:
    hop = Hop(
        key="address",
        title=words.address_title,
        value=(attempt.peer_addr if attempt and attempt.peer_addr else None)
        or (f"{target.address}:{target.port}" if target.address else "unknown"),
        detail=_connection_detail(trace, attempt) if attempt else "",
        explanation=words.address,
        link=VIRTUAL_IP_DOCS,
        timings=[Timing("connect", attempt.connect_ms if attempt else None)],
    )
    if attempt and not attempt.new_connection and attempt.peer_addr:
        hop.timings = [Timing("connect", None, note="none: reused")]
    return hop


def build_route(
    *,
    settings: FrontendSettings,
    identity: PodIdentity,
    outcome: BackendReply | BackendUnavailable,
    payload: Mapping[str, Any] | None,
    pod: PodInfo | None,
    request_label: str,
    request_id: str | None,
    trace_id: str | None = None,
) -> Route:
    reply = outcome if isinstance(outcome, BackendReply) else None
    trace = outcome.trace
    # Read here once and handed down: the call's record, and the pod's and
    # the address's details, are plain data (no property of theirs is run),
    # so building the model never goes back into the modules that made them.
    attempt: Attempt | None = trace.attempts[-1] if trace.attempts else None
    host = settings.backend_host
    body = payload or {}
    target = backend_address(host, settings.backend_port, attempt)
    where = runs_on(settings.runs_on, target.addresses)
    timings = parse_server_timing(reply.headers.get("server-timing", "")) if reply else {}
    words = place_prose(where.place, host)
    total_ms = trace.total_ms if trace.attempts else None

    frontend = Hop(
        key="frontend",
        title="This frontend pod",
        value=identity.pod_name,
        detail=f"{identity.pod_ip} on node {identity.node_name}",
        explanation=words.frontend,
        link=SERVICE_DOCS,
        timings=[Timing("round trip to the backend", total_ms)],
    )
    address = _address_hop(trace, attempt, target, words)
    pod_hop = _pod_hop(reply, body, timings, pod, words)
    data = _data_hop(reply, body, timings, pod.database_label if pod else "the database")
    hops = [frontend, _name_hop(target, words, time.time()), address, pod_hop, data]
    if isinstance(outcome, BackendUnavailable):
        target_hop = next(hop for hop in hops if hop.key == outcome.hop)
        target_hop.state = "failed"
        target_hop.error = failure_words(outcome.hop, host, outcome.message)
    _mark_after_first_failure(hops)
    return Route(
        request=request_label,
        hops=hops,
        total_ms=total_ms,
        retried=len(trace.attempts) > 1,
        request_id=request_id,
        runs_on=where,
        between=words.between,
        trace_id=trace_id,
    )


def _mark_after_first_failure(hops: list[Hop]) -> None:
    after = False
    for hop in hops:
        if after:
            hop.state = "not reached"
            hop.error = None
        elif hop.state == "failed":
            after = True
