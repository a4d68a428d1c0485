"""Traces from both tiers, as a collector receives them.

Both tiers run as real processes on MariaDB and Redis, exporting to a real
OTLP/HTTP receiver (tests/support/otlp.py). The backend listens on its own
loopback address, 127.0.0.2, with that as its POD_IP, so the address the
frontend's client span names as its peer can only have come from the socket.
"""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from common.tracing import EXPORT_TIMEOUT_SECONDS
from tests.frontend.conftest import hidden_fields, wait_for_pod_details
from tests.support.apps import AppProcess, migrate
from tests.support.balancer import TcpBalancer
from tests.support.otlp import OtlpReceiver, ReceivedSpan
from tests.support.semconv import deprecated_attributes
from tests.support.servers import MariaDB, Redis
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.mysql, pytest.mark.redis]

BACKEND_IP = "127.0.0.2"
STATUS_ERROR = 2
NAMESPACE = "tracing-test"
_TRACE_ID = re.compile(r'<code class="trace-id">([0-9a-f]{32})</code>')


@dataclass
class Traced:
    receiver: OtlpReceiver
    backend: AppProcess
    frontend: AppProcess


def _otel_env(receiver: OtlpReceiver) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        # Batches every 100 ms instead of 5 s: the test waits less.
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "POD_NAMESPACE": NAMESPACE,
        "NODE_NAME": "node-7",
        "DEPLOYMENT_ENVIRONMENT": "test",
        "SHUTDOWN_DELAY_SECONDS": "0",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture(scope="module")
def traced(
    tmp_path_factory: pytest.TempPathFactory, mariadb: MariaDB, redis_server: Redis
) -> Iterator[Traced]:
    workdir: Path = tmp_path_factory.mktemp("tracing")
    receiver = OtlpReceiver().start()
    backend_env = _otel_env(receiver) | {
        "DATABASE_URL": mariadb.url(mariadb.create_database()),
        "REDIS_URL": redis_server.url(),
        "POD_NAME": "backend-traced",
        "K8S_DEPLOYMENT_NAME": "backend",
        "K8S_CONTAINER_NAME": "backend",
        "POD_IP": BACKEND_IP,
        "HEALTH_INTERVAL_SECONDS": "0.2",
        "RATE_LIMIT_WRITES": "100000",
    }
    migrate(backend_env)
    backend = AppProcess("backend", backend_env, workdir / "backend.log", host=BACKEND_IP)
    backend.start()
    frontend_env = _otel_env(receiver) | {
        "BACKEND_URL": backend.url,
        "POD_NAME": "frontend-traced",
        "K8S_DEPLOYMENT_NAME": "frontend",
        "K8S_CONTAINER_NAME": "frontend",
        "POD_IP": "127.0.0.1",
    }
    frontend = AppProcess("frontend", frontend_env, workdir / "frontend.log")
    try:
        frontend.start()
        yield Traced(receiver, backend, frontend)
    finally:
        frontend.stop()
        backend.stop()
        receiver.stop()


def _complete(spans: list[ReceivedSpan]) -> bool:
    """The whole tree is in: a root, every parent, and an answer under every call.

    Each tier exports on its own schedule, and a span leaves after its
    children (it ends after them), so a tree is whole once its root is in,
    every parent named is in, and each frontend call has the backend's span.
    """
    ids = {s.span_id for s in spans}
    parents = {s.parent_span_id for s in spans}
    roots = [s for s in spans if s.parent_span_id is None or s.parent_span_id not in ids]
    # A try that failed (the retry's first) reached no backend to answer it.
    calls = [
        s
        for s in spans
        if s.service == "frontend" and s.kind == "client" and s.status_code != STATUS_ERROR
    ]
    return (
        any(s.service == "frontend" and s.kind == "server" for s in roots)
        and len(roots) == 1
        and all(c.span_id in parents for c in calls)
    )


def _trace(receiver: OtlpReceiver, trace_id: str) -> list[ReceivedSpan]:
    def of(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        return [s for s in spans if s.trace_id == trace_id]

    return of(receiver.wait_for(lambda spans: _complete(of(spans))))


def _one(spans: list[ReceivedSpan], **match: str) -> ReceivedSpan:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, [(s.service, s.kind, s.name) for s in spans])
    return found[0]


def _children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return [s for s in spans if s.parent_span_id == parent.span_id]


def _log_lines(app: AppProcess, request_id: str) -> list[dict[str, object]]:
    """The request's lines, once there are any: the access line is written after the reply."""
    found: list[dict[str, object]] = []

    def logged() -> bool:
        found[:] = _lines_now(app, request_id)
        return bool(found)

    wait_until(logged, timeout=5)
    return found


def _lines_now(app: AppProcess, request_id: str) -> list[dict[str, object]]:
    lines = []
    for line in app.logs().splitlines():
        if request_id in line:
            entry = json.loads(line)
            if entry.get("request_id") == request_id:
                lines.append(entry)
    return lines


def _assert_chain(
    spans: list[ReceivedSpan], method: str, route: str, backend_route: str
) -> ReceivedSpan:
    """frontend server → backend client → backend server → Redis and the database.

    The call to `backend_route` is returned; a page makes other backend calls
    too (the pod's /api/info, say), each a client span with its server span.
    """
    page = _one(spans, service="frontend", kind="server")
    assert page.parent_span_id is None
    assert page.attributes["http.request.method"] == method
    assert page.attributes["http.route"] == route
    calls = [s for s in _children(spans, page) if s.kind == "client"]
    assert calls and {s.service for s in calls} == {"frontend"}
    served: dict[str, tuple[ReceivedSpan, ReceivedSpan]] = {}
    for call in calls:
        kids = _children(spans, call)
        assert len(kids) == 1, [(k.service, k.kind, k.name, k.attributes) for k in kids]
        (server,) = kids
        assert (server.service, server.kind) == ("backend", "server")
        served[f"{server.attributes['http.request.method']} {server.attributes['http.route']}"] = (
            call,
            server,
        )
    call, server = served[f"{method if method == 'GET' else 'POST'} {backend_route}"]
    below = _children(spans, server)
    systems = {s.attributes.get("db.system.name") for s in below}
    assert "redis" in systems, [(s.name, s.attributes) for s in below]
    assert systems & {"mysql", "mariadb"}, [(s.name, s.attributes) for s in below]
    for span in below:
        _assert_database_span(span)
    for span in spans:
        tier = span.service
        assert span.resource["k8s.pod.name"] == f"{tier}-traced"
        assert span.resource["k8s.namespace.name"] == NAMESPACE
        assert span.resource["k8s.node.name"] == "node-7"
        assert span.resource["service.namespace"] == "clusterip-demo"
        assert span.resource["deployment.environment.name"] == "test"
    _assert_stable_names_only(spans)
    return call


def _assert_database_span(span: ReceivedSpan) -> None:
    """A Redis command or SQL statement, in the stable database conventions."""
    attributes = span.attributes
    assert span.kind == "client"
    assert attributes["db.query.text"], attributes
    assert attributes["server.address"] and attributes["server.port"], attributes
    if attributes["db.system.name"] == "redis":
        assert attributes["db.namespace"] == "0"
        if "db.redis.pipeline_length" not in attributes:  # a pipeline is many operations
            assert span.name == attributes["db.operation.name"], attributes
        return
    # SQL: named `<operation> <table>`, the table the statement names first;
    # `<operation> <database>` for one that names none (START TRANSACTION).
    operation = attributes["db.operation.name"]
    text = attributes["db.query.text"]
    assert text.split()[0].upper() == operation
    table = attributes.get("db.collection.name")
    names_a_table = operation == "UPDATE" or re.search(r"\b(FROM|INTO)\s+`?\w", text, re.I)
    assert bool(table) == bool(names_a_table), attributes
    if table is None:
        assert span.name == f"{operation} {attributes['db.namespace']}", attributes
        return
    assert re.search(rf"\b(FROM|INTO|UPDATE)\s+`?{table}\b", text, re.I), attributes
    assert span.name == f"{operation} {table}"


DEPRECATED_SEEN_BEFORE = {"db.statement", "db.system", "net.peer.name", "net.peer.port"}


def _assert_stable_names_only(spans: list[ReceivedSpan]) -> None:
    """No span or resource carries a name the semantic conventions deprecate."""
    deprecated = deprecated_attributes()
    # The list is read from the installed conventions: it holds what the spans once had.
    assert DEPRECATED_SEEN_BEFORE | {"http.method", "http.status_code", "db.name"} <= deprecated
    for span in spans:
        old = (set(span.attributes) | set(span.resource)) & deprecated
        assert not old, (span.service, span.name, sorted(old))


def test_a_page_view_and_a_post_are_one_trace_each_across_both_tiers(
    traced: Traced, fresh_redis: Redis
) -> None:
    # Redis is emptied (the session shares it): the page misses, and MySQL answers.
    request_id = f"trace-{uuid.uuid4().hex}"
    with httpx.Client(base_url=traced.frontend.url, timeout=20) as client:
        page = client.get("/", headers={"X-Request-ID": request_id})
        assert page.status_code == 200
        found = _TRACE_ID.search(page.text)
        assert found, "the route panel shows the trace id"
        trace_id = found[1]
        wait_for_pod_details(client)  # learnt beside the page, not on its way
        route = client.get("/api/route").json()

        # frontend server, backend client, backend server, a Redis look-up, a query.
        spans = _trace(traced.receiver, trace_id)
        call = _assert_chain(spans, "GET", "/", "/api/messages")
        assert call.attributes["server.address"] == BACKEND_IP
        # The pod that answered, by its socket address: the pod the panel names.
        pod_hop = {h["key"]: h for h in route["hops"]}["pod"]
        assert pod_hop["value"] == "backend-traced"
        assert pod_hop["detail"].split()[0] == BACKEND_IP
        # Here no ClusterIP stands between the tiers: the socket's peer is the pod.
        assert call.attributes["network.peer.address"] == BACKEND_IP
        assert call.attributes["clusterip_demo.served_by"] == "backend-traced"
        assert call.attributes["http.response.status_code"] == 200
        assert "http.request.resend_count" not in call.attributes  # a first try
        for span in spans:
            assert span.resource["k8s.deployment.name"] == span.service
            assert span.resource["k8s.container.name"] == span.service

        # Every line both tiers wrote for the request carries its trace id.
        for app in (traced.frontend, traced.backend):
            lines = _log_lines(app, request_id)
            assert lines, f"{app.module} logged the request"
            assert {line.get("trace_id") for line in lines} == {trace_id}

        # A post through the form: a write is a trace of its own, with a new id.
        write_id = f"trace-{uuid.uuid4().hex}"
        fields = hidden_fields(page.text)
        posted = client.post(
            "/messages",
            data=fields | {"author": "Tracer", "text": "one trace"},
            headers={"X-Request-ID": write_id},
        )
        assert posted.status_code == 303, posted.text
        backend_lines = _log_lines(traced.backend, write_id)
        write_trace = {line.get("trace_id") for line in backend_lines}
        assert len(write_trace) == 1 and trace_id not in write_trace
        (write_trace_id,) = write_trace
        assert isinstance(write_trace_id, str)
        spans = _trace(traced.receiver, write_trace_id)
        _assert_chain(spans, "POST", "/messages", "/api/messages")
        assert {line.get("trace_id") for line in _log_lines(traced.frontend, write_id)} == {
            write_trace_id
        }


def _get_with_traceparent(frontend: AppProcess, flags: str) -> tuple[str, str, httpx.Response]:
    trace_id = uuid.uuid4().hex
    parent = uuid.uuid4().hex[:16]
    with httpx.Client(base_url=frontend.url, timeout=20) as client:
        response = client.get(
            "/api/messages",
            headers={
                "traceparent": f"00-{trace_id}-{parent}-{flags}",
                "X-Request-ID": f"edge-{trace_id[:8]}",
            },
        )
    assert response.status_code == 200
    return trace_id, parent, response


def test_at_the_public_edge_an_incoming_traceparent_is_only_a_link(traced: Traced) -> None:
    """A browser cannot choose the trace id, opt out of sampling, or pick a parent."""
    for flags in ("01", "00"):  # sampled, and "do not sample"
        trace_id, parent, response = _get_with_traceparent(traced.frontend, flags)

        def linked(spans: list[ReceivedSpan], tid: str = trace_id) -> list[ReceivedSpan]:
            return [
                s
                for s in spans
                if s.service == "frontend"
                and s.kind == "server"
                and any(link[0] == tid for link in s.links)
            ]

        (page,) = linked(traced.receiver.wait_for(lambda spans: bool(linked(spans))))
        assert page.trace_id != trace_id
        assert page.parent_span_id is None  # a root of the tiers' own
        assert page.links == ((trace_id, parent),)
        # The rest of the trace is the tiers' own, recorded although flags said 00.
        spans = _trace(traced.receiver, page.trace_id)
        served = _one(spans, service="backend", kind="server")
        (call,) = _children(spans, page)
        assert served.parent_span_id == call.span_id
        assert not [s for s in traced.receiver.spans if s.trace_id == trace_id]
        # Every log line of the request carries the trace id the tiers made.
        request_id = response.headers["x-request-id"]
        for app in (traced.frontend, traced.backend):
            lines = _log_lines(app, request_id)
            assert lines, app.module
            assert {line.get("trace_id") for line in lines} == {page.trace_id}


def test_behind_a_trusted_proxy_an_incoming_traceparent_is_continued(
    traced: Traced, tmp_path: Path
) -> None:
    frontend = AppProcess(
        "frontend",
        _otel_env(traced.receiver)
        | {
            "BACKEND_URL": traced.backend.url,
            "POD_NAME": "frontend-traced",
            "POD_IP": "127.0.0.1",
            "TRACE_TRUSTED_PROXIES": "127.0.0.0/8",
        },
        tmp_path / "frontend-behind-proxy.log",
    )
    frontend.start()
    try:
        trace_id, parent, _response = _get_with_traceparent(frontend, "01")
    finally:
        frontend.stop()
    spans = _trace(traced.receiver, trace_id)
    page = _one(spans, service="frontend", kind="server")
    assert page.parent_span_id == parent
    assert page.links == ()
    served = _one(spans, service="backend", kind="server")
    (call,) = _children(spans, page)
    assert served.parent_span_id == call.span_id


def _black_hole() -> socket.socket:
    """A listener that takes connections into its backlog and never answers."""
    hole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return hole


def test_a_collector_that_is_gone_or_silent_fails_and_slows_no_request(
    traced: Traced, measured: list[str]
) -> None:
    receiver = traced.receiver
    # Not a speed measurement: a request must never wait for an export, so none
    # may take as long as one export's timeout (plus a second of slack).
    bound = EXPORT_TIMEOUT_SECONDS + 1.0
    slowest = 0.0

    def traffic(client: httpx.Client, rounds: int = 10**6, seconds: float = 0.0) -> None:
        """`rounds` rounds of requests, or as many as fit in `seconds` (then at least one)."""
        nonlocal slowest
        until = time.monotonic() + seconds
        for i in range(rounds):
            if seconds and i and time.monotonic() > until:
                break
            for method, path, body in (
                ("GET", "/", None),
                ("GET", "/api/messages", None),
                ("POST", "/api/messages", {"author": "Gone", "text": f"n{i}"}),
            ):
                started = time.monotonic()
                response = client.request(method, path, json=body)
                elapsed = time.monotonic() - started
                slowest = max(slowest, elapsed)
                assert response.status_code in (200, 201), (method, path, response.text)
                assert elapsed < bound, (method, path, elapsed)

    with httpx.Client(base_url=traced.frontend.url, timeout=20) as client:
        traffic(client, 3)
        # Each phase outlasts an export's timeout, so requests overlap exports
        # that fail (refused) or hang (a silent collector) from start to end.
        phase = EXPORT_TIMEOUT_SECONDS * 1.5
        receiver.stop()  # refused connections from here on
        traffic(client, seconds=phase)
        hole = _black_hole()
        try:
            hole.bind(("127.0.0.1", receiver.port))
            hole.listen(128)
            traffic(client, seconds=phase)  # exports now wait out their timeout
        finally:
            hole.close()
        # The collector back: spans flow again, no restart of either tier.
        receiver.start()
        before = len(receiver.snapshot())
        traffic(client, 2)
        after = receiver.wait_for(
            lambda spans: {s.service for s in spans[before:]} == {"frontend", "backend"}
        )
        assert {s.service for s in after[before:]} == {"frontend", "backend"}
    for app in (traced.frontend, traced.backend):
        assert app.proc is not None and app.proc.poll() is None, app.logs()[-2000:]
    measured.append(
        f"tracing: slowest request while the collector was gone or silent {slowest:.2f} s "
        f"(bound {bound:g} s)"
    )


@dataclass
class Balanced:
    receiver: OtlpReceiver
    backends: list[AppProcess]
    frontend: AppProcess


@pytest.fixture(scope="module")
def balanced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Balanced]:
    """Two backends behind a per-connection balancer that lets a pod die silently."""
    workdir: Path = tmp_path_factory.mktemp("tracing-balanced")
    receiver = OtlpReceiver().start()
    env = _otel_env(receiver) | {
        "DATABASE_URL": f"sqlite:///{workdir / 'guestbook.db'}",
        "REDIS_URL": "",
        "HEALTH_INTERVAL_SECONDS": "0.2",
    }
    migrate(env)
    backends = [
        AppProcess("backend", env | {"POD_NAME": f"backend-{x}"}, workdir / f"backend-{x}.log")
        for x in "ab"
    ]
    apps: list[AppProcess] = []
    balancer: TcpBalancer | None = None
    try:
        for backend in backends:
            backend.start()
            apps.append(backend)
        balancer = TcpBalancer([(b.host, b.port) for b in backends], silent_backend_death=True)
        balancer.start()
        frontend = AppProcess(
            "frontend",
            _otel_env(receiver) | {"BACKEND_URL": balancer.url, "POD_NAME": "frontend-b"},
            workdir / "frontend.log",
        )
        frontend.start()
        apps.append(frontend)
        yield Balanced(receiver, backends, frontend)
    finally:
        for app in reversed(apps):
            app.stop()
        if balancer is not None:
            balancer.stop()
        receiver.stop()


def test_a_retry_on_a_fresh_connection_is_a_second_client_span(balanced: Balanced) -> None:
    with httpx.Client(base_url=balanced.frontend.url, timeout=20) as client:
        # The pod is learnt beside the first view, on the pooled connection:
        # once that is done, the pool holds the one connection to the victim.
        wait_for_pod_details(client)
        first = client.get("/api/route").json()
        victim_name = {h["key"]: h for h in first["hops"]}["pod"]["value"]
        victim = next(b for b in balanced.backends if b.env["POD_NAME"] == victim_name)
        # Gone without a goodbye: the pooled connection fails when next used.
        victim.kill()
        request_id = f"retry-{uuid.uuid4().hex}"
        second = client.get("/api/route", headers={"X-Request-ID": request_id})
    assert second.status_code == 200 and second.json()["retried"] is True
    (trace_id,) = {line["trace_id"] for line in _log_lines(balanced.frontend, request_id)}
    assert isinstance(trace_id, str)
    spans = _trace(balanced.receiver, trace_id)
    page = _one(spans, service="frontend", kind="server")
    calls = [s for s in _children(spans, page) if s.kind == "client"]
    by_url: dict[str, list[ReceivedSpan]] = {}
    for call in calls:
        by_url.setdefault(call.attributes["url.full"], []).append(call)
    (tries,) = [t for t in by_url.values() if len(t) > 1]
    failed, retried = sorted(tries, key=lambda s: s.start_ns)
    assert failed.status_code == STATUS_ERROR and failed.attributes["error.type"]
    assert _children(spans, failed) == []
    assert "http.request.resend_count" not in failed.attributes
    assert retried.attributes["http.request.resend_count"] == 1
    assert retried.attributes["http.response.status_code"] == 200
    assert retried.attributes["clusterip_demo.new_connection"] is True
    (served,) = _children(spans, retried)
    assert served.service == "backend" and served.resource["k8s.pod.name"] != victim_name
    assert retried.attributes["clusterip_demo.served_by"] == served.resource["k8s.pod.name"]
    _assert_stable_names_only(spans)
