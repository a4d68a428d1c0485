"""The route model built from one call's outcome, with no server and no lookup."""

from __future__ import annotations

import httpx

from common.identity import PodIdentity
from frontend.backend_client import Attempt, BackendReply, BackendUnavailable, CallTrace
from frontend.config import FrontendSettings
from frontend.pods import PodInfo
from frontend.route_builder import build_route
from frontend.route_model import Route

IDENTITY = PodIdentity("frontend", "test", "frontend-a", "10.0.0.5", "node-1")


def _settings(url: str = "http://backend:8000") -> FrontendSettings:
    return FrontendSettings(backend_url=url, runs_on="kubernetes")


def _trace(*, reused: bool = False, error: str | None = None, stage: str = "send") -> CallTrace:
    attempt = Attempt(fresh_client=False, new_connection=not reused, connect_ms=0.4)
    attempt.peer_addr = "10.96.0.12:8000"
    attempt.local_addr = "10.0.0.5:40000"
    attempt.connection_opened_at = 1_700_000_000.0
    attempt.connection_age_s = 3.0
    attempt.requests_on_connection = 4
    attempt.error = error
    attempt.stage = stage  # type: ignore[assignment]
    return CallTrace(attempts=[attempt], total_ms=5.0)


def _route(outcome: BackendReply | BackendUnavailable, pod: PodInfo | None = None) -> Route:
    return build_route(
        settings=_settings(),
        identity=IDENTITY,
        outcome=outcome,
        payload={"items": [], "cache": "hit"} if isinstance(outcome, BackendReply) else None,
        pod=pod,
        request_label="GET /api/messages?limit=20",
        request_id="r1",
    )


def _reply(status: int = 200, reused: bool = False) -> BackendReply:
    headers = httpx.Headers({"x-served-by": "backend-1", "server-timing": "app;dur=2, cache;dur=1"})
    return BackendReply(status, headers, b"{}", _trace(reused=reused))


def test_the_name_hop_shows_the_connections_address_and_when() -> None:
    route = _route(_reply())
    hops = {hop.key: hop for hop in route.hops}
    assert route.ok and route.runs_on.place == "kubernetes"
    assert hops["name"].title == "Service name"
    assert hops["name"].detail.startswith("resolved to 10.96.0.12 when this connection was opened")
    assert "UTC" in hops["name"].detail
    assert hops["name"].timings[0].note == "none for this view"
    assert hops["address"].value == "10.96.0.12:8000"
    assert hops["data"].value == "Redis (cache hit)"
    assert "ClusterIP" in route.between


def test_a_reused_connection_has_no_connect_time_and_the_pod_is_named() -> None:
    pod = PodInfo("backend-1", "10.1.0.7", "n2", "mysql", "redis")
    hops = {hop.key: hop for hop in _route(_reply(reused=True), pod).hops}
    assert hops["address"].timings[0].note == "none: reused"
    assert "kept-alive connection, open 3.0 s, request 4 on it" in hops["address"].detail
    assert hops["pod"].value == "backend-1" and hops["pod"].detail == "10.1.0.7 on node n2"
    assert hops["pod"].timings[0].ms == 2.0


def test_a_refused_connect_fails_the_address_hop_and_what_follows() -> None:
    trace = _trace(error="ConnectError: refused", stage="connect")
    trace.attempts[0].peer_addr = None
    route = _route(BackendUnavailable("address", "refused", trace))
    states = {hop.key: hop.state for hop in route.hops}
    assert states == {
        "frontend": "ok",
        "name": "ok",
        "address": "failed",
        "pod": "not reached",
        "data": "not reached",
    }
    address = route.hops[2]
    assert address.error is not None and "kubectl get endpointslices" in address.error
    assert route.failed_hop == "address"


def test_a_name_that_did_not_resolve_fails_the_name_hop() -> None:
    trace = _trace(error="NameNotResolved", stage="connect")
    trace.attempts[0].peer_addr = None
    route = _route(BackendUnavailable("name", "no such name", trace))
    assert route.failed_hop == "name"
    assert route.hops[1].error == "`backend` did not resolve: no such name"


def test_a_backend_whose_database_is_down_fails_the_data_hop() -> None:
    reply = _reply(503)
    route = build_route(
        settings=_settings(),
        identity=IDENTITY,
        outcome=reply,
        payload={"error": "dependency_unavailable", "dependency": "database"},
        pod=None,
        request_label="GET /api/messages",
        request_id=None,
    )
    states = {hop.key: hop.state for hop in route.hops}
    assert states["pod"] == "ok" and states["data"] == "failed"
