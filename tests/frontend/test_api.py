"""The JSON twins, the probes and the metrics, against a real backend."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import httpx
import pytest

from frontend.config import FrontendSettings
from tests.frontend.conftest import Stack, wait_for_pod_details
from tests.support.frontends import FrontendLauncher
from tests.support.waiting import wait_until


def _sample(metrics_text: str, series: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_route_json_names_every_hop(solo: Stack) -> None:
    client = solo.client()
    wait_for_pod_details(client)
    response = client.get("/api/route", headers={"X-Request-ID": "route-check-1"})
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["failed_hop"] is None
    assert body["request_id"] == "route-check-1"
    assert body["backend_url"] == f"http://localhost:{solo.backends[0].port}"
    assert body["frontend"]["pod_name"] == "frontend-a"
    hops = {hop["key"]: hop for hop in body["hops"]}
    assert list(hops) == ["frontend", "name", "address", "pod", "data"]
    assert all(hop["state"] == "ok" and hop["explanation"] for hop in hops.values())
    # No lookup on the page's path: the name's answer is the connection's address.
    assert hops["name"]["timings"] == [
        {"label": "name lookup", "ms": None, "note": "none for this view"}
    ]
    assert hops["name"]["detail"].startswith("resolved to 127.0.0.1 when this connection")
    assert hops["address"]["value"] == f"127.0.0.1:{solo.backends[0].port}"
    assert hops["pod"]["value"] == "backend-solo"
    assert hops["pod"]["detail"] == "127.0.0.1 on node test-node"  # learnt from /api/info
    backend_time = hops["pod"]["timings"][0]
    assert backend_time["label"] == "in the backend" and backend_time["ms"] > 0
    assert hops["data"]["value"] == "SQLite"
    assert body["total_ms"] > 0
    assert body["docs"] == "https://kubernetes.io/docs/concepts/services-networking/service/"


def test_a_new_pod_is_learnt_beside_the_page(
    solo: Stack, frontend_factory: FrontendLauncher
) -> None:
    app = frontend_factory(f"http://localhost:{solo.backends[0].port}", pod_name="frontend-new")
    with httpx.Client(base_url=app.url, timeout=20) as client:
        first = {hop["key"]: hop for hop in client.get("/api/route").json()["hops"]}
        # Named by its answer's header; its IP and node are not asked for on the way.
        assert first["pod"]["value"] == "backend-solo" and first["pod"]["detail"] == ""
        assert first["data"]["value"] == "the database"

        def learnt() -> bool:
            hops = {hop["key"]: hop for hop in client.get("/api/route").json()["hops"]}
            return hops["pod"]["detail"] == "127.0.0.1 on node test-node"

        wait_until(learnt, timeout=10)


def test_a_second_view_reuses_the_kept_alive_connection(solo: Stack) -> None:
    client = solo.client()
    client.get("/api/route")
    address = {h["key"]: h for h in client.get("/api/route").json()["hops"]}["address"]
    assert "kept-alive connection" in address["detail"]
    assert address["timings"] == [{"label": "connect", "ms": None, "note": "none: reused"}]


def test_messages_are_proxied_with_status_body_and_headers(solo: Stack) -> None:
    client = solo.client()
    text = f"proxied {uuid.uuid4().hex[:8]}"
    key = uuid.uuid4().hex
    created = client.post(
        "/api/messages", json={"author": "Script", "text": text}, headers={"Idempotency-Key": key}
    )
    assert created.status_code == 201
    assert created.headers["x-backend-pod"] == "backend-solo"
    assert created.headers["x-served-by"] == "frontend-a"
    body = created.json()
    assert body["text"] == text and body["written_by"] == "backend-solo"
    location = created.headers["location"]
    assert location == f"/api/messages/{body['id']}"
    assert client.get(location).json() == body  # the Location works on the frontend too
    replay = client.post(
        "/api/messages", json={"author": "Script", "text": text}, headers={"Idempotency-Key": key}
    )
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == body["id"]
    listed = client.get("/api/messages", params={"limit": 5})
    assert listed.status_code == 200
    page = listed.json()
    assert page["cache"] == "off" and page["items"][0]["id"] >= body["id"]


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "code"),
    [
        ("POST", "/api/messages", {"author": "", "text": "x"}, 422, "validation_error"),
        ("POST", "/api/messages", {"author": "a"}, 422, "validation_error"),
        ("GET", "/api/messages?limit=0", None, 422, "validation_error"),
        ("GET", "/api/messages?before_id=x", None, 422, "validation_error"),
        ("GET", "/api/messages/987654321", None, 404, "not_found"),
        ("GET", "/api/messages/0", None, 422, "validation_error"),
    ],
)
def test_backend_errors_pass_through_unchanged(
    solo: Stack, method: str, path: str, payload: dict | None, status: int, code: str
) -> None:
    client = solo.client()
    response = client.request(method, path, json=payload)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and body["message"]
    if status == 422 and method == "POST":
        assert body["details"][0]["loc"][0] == "body"


def test_malformed_json_is_the_backends_clear_400(solo: Stack) -> None:
    response = solo.client().post(
        "/api/messages", content=b"{bad", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_json"


def test_spread_json_on_one_backend(solo: Stack) -> None:
    response = solo.client().get("/api/spread", params={"n": 5})
    assert response.status_code == 200
    body = response.json()
    assert body["n"] == 5
    fresh, kept = body["fresh_connections"], body["one_kept_alive_connection"]
    assert fresh["pods"] == {"backend-solo": 5} and fresh["connections_opened"] == 5
    assert kept["pods"] == {"backend-solo": 5} and kept["connections_opened"] == 1
    assert body["explanation"].startswith("A ClusterIP spreads connections, not requests.")
    default = solo.client().get("/api/spread").json()
    assert default["n"] == 30


@pytest.mark.parametrize("n", ["0", "201", "ten", "", "1e3"])
def test_spread_json_refuses_bad_n(solo: Stack, n: str) -> None:
    # `n` is an integer from 1 to SPREAD_MAX in the OpenAPI, and exactly that is
    # taken: a blank is not an integer (the page's form, for people, reads a
    # blank as the default; a script leaves `n` out for that).
    response = solo.client().get("/api/spread", params={"n": n})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_error"
    assert body["message"].startswith("n: ")
    assert body["details"][0]["loc"] == ["query", "n"]


def test_probes_report_the_backend_without_depending_on_it(solo: Stack) -> None:
    client = solo.client()
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["backend"]["reachable"] is True
    assert body["backend"]["status"] == "ready"
    assert body["backend"]["pod"] == "backend-solo"


def test_metrics_count_backend_calls_and_connections(solo: Stack) -> None:
    client = solo.client()
    before = httpx.get(solo.frontend.metrics_url).text
    client.get("/")
    client.get("/api/spread", params={"n": 3})
    after = httpx.get(solo.frontend.metrics_url).text
    calls = 'backend_calls_total{method="GET",status="200"}'
    assert _sample(after, calls) >= _sample(before, calls) + 7
    opened = "backend_connections_opened_total"
    assert _sample(after, opened) >= _sample(before, opened) + 4
    assert 'http_requests_total{method="GET",route="/",status="200"}' in after
    assert 'app_info{pod="frontend-a",service="frontend"' in after


def test_metrics_only_on_the_metrics_port(solo: Stack) -> None:
    # Port 8080 is the page's, open to everyone who reaches the frontend: no metrics there.
    public = solo.client().get("/metrics")
    assert public.status_code == 404
    assert "http_requests_total" not in public.text
    scrape = httpx.get(solo.frontend.metrics_url)
    assert scrape.status_code == 200
    assert "backend_calls_total" in scrape.text
    other = solo.frontend.metrics_url.removesuffix("/metrics") + "/"
    assert httpx.get(other).status_code == 404


def test_request_id_travels_to_the_backend_log(solo: Stack) -> None:
    request_id = f"trace-{uuid.uuid4().hex[:12]}"
    response = solo.client().get("/", headers={"X-Request-ID": request_id})
    assert response.headers["x-request-id"] == request_id

    def backend_logged_it() -> bool:
        lines = [json.loads(ln) for ln in solo.backends[0].logs().splitlines() if "{" in ln]
        return any(
            ln.get("request_id") == request_id and ln.get("path") == "/api/messages" for ln in lines
        )

    # The access line is written after the reply is sent, so it can land a
    # moment after the frontend's answer: wait for it, within a bound.
    wait_until(backend_logged_it, timeout=5.0)


def test_openapi_lists_the_json_twins(solo: Stack) -> None:
    paths = solo.client().get("/openapi.json").json()["paths"]
    for path in ("/api/route", "/api/spread", "/api/messages", "/healthz", "/readyz"):
        assert path in paths
    assert not any(re.fullmatch(r"/(spread|messages)?", p) for p in paths)  # pages are not API


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_json_writes_insist_on_json(solo: Stack, content_type: str) -> None:
    # What a cross-site form can send without a CORS preflight: refused.
    response = solo.client().post(
        "/api/messages",
        content=b'{"author": "x", "text": "cross-site"}',
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


class _PerRequestLauncher(FrontendLauncher):
    module = "bench.per_request"


def test_the_benchmarks_client_per_request_opens_a_connection_per_view(
    solo: Stack, tmp_path: Path
) -> None:
    # The benchmark's foil (bench/per_request.py): what the shared pool saves.
    launcher = _PerRequestLauncher(tmp_path)
    try:
        app = launcher(solo.backends[0].url)
        for _ in range(2):
            route = httpx.get(app.url + "/api/route", timeout=20).json()
            address = {hop["key"]: hop for hop in route["hops"]}["address"]
            assert address["detail"].startswith("a new connection")
            assert address["timings"][0]["ms"] is not None
    finally:
        launcher.stop_all()


def test_production_settings_have_no_benchmark_switch() -> None:
    assert "backend_client_per_request" not in FrontendSettings.model_fields


def test_the_panel_says_no_clusterip_stands_between_local_tiers(solo: Stack) -> None:
    # BACKEND_URL=http://localhost:<port>: a loopback address, as under `make run`.
    body = solo.client().get("/api/route").json()
    assert body["runs_on"]["place"] == "local"
    assert "loopback" in body["runs_on"]["because"]
    assert "No Service, no ClusterIP" in body["between"]
    hops = {hop["key"]: hop for hop in body["hops"]}
    assert hops["address"]["title"] == "Address (loopback, no Service)"
    assert "ClusterIP" not in hops["address"]["title"]
    page = solo.client().get("/").text
    assert 'data-runs-on="local"' in page


def test_runs_on_names_compose_and_its_dns(solo: Stack, frontend_factory: FrontendLauncher) -> None:
    app = frontend_factory(f"http://localhost:{solo.backends[0].port}", runs_on="compose")
    body = httpx.get(app.url + "/api/route", timeout=20).json()
    assert body["runs_on"] == {"place": "compose", "because": "set by RUNS_ON=compose"}
    hops = {hop["key"]: hop for hop in body["hops"]}
    assert "Docker's embedded DNS" in hops["name"]["explanation"]
    assert hops["address"]["title"] == "Address (a container's own, no virtual IP)"
