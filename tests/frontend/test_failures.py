"""A frontend whose backend is not there: a clear page, the broken hop, never a 500."""

from __future__ import annotations

import contextlib
import signal
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.frontend.conftest import hidden_fields, hop_html, hop_states
from tests.support.apps import AppProcess
from tests.support.frontends import FrontendLauncher
from tests.support.ports import free_port


@pytest.fixture(scope="module")
def stranded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, AppProcess]]:
    """One frontend pointed at a port nothing listens on, one at a name that never resolves."""
    launcher = FrontendLauncher(tmp_path_factory.mktemp("frontend-stranded"))
    try:
        apps = {
            "address": launcher(
                f"http://127.0.0.1:{free_port()}", pod_name="frontend-lost", wait_ready=False
            ),
            "name": launcher(
                "http://no-such-backend.invalid:8000", pod_name="frontend-dns", wait_ready=False
            ),
        }
        for app in apps.values():
            app.wait_ready()
        yield apps
    finally:
        launcher.stop_all()


def test_unreachable_backend_is_a_503_page_with_the_broken_hop(
    stranded: dict[str, AppProcess],
) -> None:
    response = httpx.get(stranded["address"].url + "/", timeout=20)
    assert response.status_code == 503
    html = response.text
    assert 'class="banner banner-error" role="alert"' in html
    assert "nothing accepted a connection at the backend&#39;s address" in html
    assert hop_states(html) == {
        "frontend": "ok",
        "name": "ok",
        "address": "failed",
        "pod": "not reached",
        "data": "not reached",
    }
    assert "Nothing accepted the connection" in hop_html(html, "address")
    assert "kubectl get endpointslices" in hop_html(html, "address")
    assert "The messages cannot be shown while the backend is unreachable." in html
    assert '<form method="post" action="/messages"' in html
    assert "Traceback" not in html


def test_a_name_that_does_not_resolve_fails_the_name_hop(
    stranded: dict[str, AppProcess],
) -> None:
    response = httpx.get(stranded["name"].url + "/", timeout=20)
    assert response.status_code == 503
    states = hop_states(response.text)
    assert states["name"] == "failed"
    assert states["address"] == states["pod"] == states["data"] == "not reached"
    assert "no-such-backend.invalid" in hop_html(response.text, "name")
    route = httpx.get(stranded["name"].url + "/api/route", timeout=20)
    assert route.status_code == 503
    assert route.json()["failed_hop"] == "name"


def test_json_twins_answer_503_not_500(stranded: dict[str, AppProcess]) -> None:
    with httpx.Client(base_url=stranded["address"].url, timeout=20) as client:
        route = client.get("/api/route")
        assert route.status_code == 503
        assert route.json()["failed_hop"] == "address"
        listed = client.get("/api/messages")
        assert listed.status_code == 503
        assert listed.json()["error"] == "backend_unavailable"
        assert listed.headers["retry-after"] == "2"
        posted = client.post("/api/messages", json={"author": "a", "text": "b"})
        assert posted.status_code == 503
        spread = client.get("/api/spread", params={"n": 2})
        assert spread.status_code == 503
        assert spread.json()["fresh_connections"]["failed"] == 2
        page = client.get("/spread", params={"n": 2})
        assert page.status_code == 503
        assert "no request of either run was answered" in page.text


def test_readiness_stays_up_and_reports_the_backend(stranded: dict[str, AppProcess]) -> None:
    ready = httpx.get(stranded["address"].url + "/readyz", timeout=20)
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["backend"]["reachable"] is False
    assert body["backend"]["failed_hop"] == "address"


def test_a_form_sent_while_the_backend_is_down_keeps_the_text(
    stranded: dict[str, AppProcess],
) -> None:
    with httpx.Client(base_url=stranded["address"].url, timeout=20) as client:
        fields = hidden_fields(client.get("/").text)
        response = client.post(
            "/messages", data=fields | {"author": "Patient", "text": "try me later"}
        )
    assert response.status_code == 503
    assert "The message was not sent: the backend is unreachable" in response.text
    assert "try me later</textarea>" in response.text
    # Same key: sending it again once the backend is back cannot write twice.
    assert hidden_fields(response.text)["idempotency_key"] == fields["idempotency_key"]


def test_sigterm_fails_readiness_while_still_serving(frontend_factory: FrontendLauncher) -> None:
    app = frontend_factory(
        f"http://127.0.0.1:{free_port()}", pod_name="frontend-drain", shutdown_delay_seconds="1.5"
    )
    app.signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    ready = httpx.get(app.url + "/readyz", timeout=5)
    while ready.status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
        ready = httpx.get(app.url + "/readyz", timeout=5)
    assert ready.status_code == 503
    assert ready.json()["status"] == "draining"
    page = httpx.get(app.url + "/", timeout=5)  # still answering during the delay
    assert page.status_code == 503 and "banner" in page.text
    assert page.headers["connection"] == "close"  # clients move to another replica
    assert app.proc is not None
    assert app.proc.wait(timeout=15) == 0


@contextlib.contextmanager
def _black_hole() -> Iterator[int]:
    """A loopback port that drops every SYN, as a partitioned pod does: a listener that
    never accepts, its accept queue filled, so the kernel ignores new connections."""
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(8):
            try:
                stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=0.3))
            except TimeoutError:
                break  # the queue is full: SYNs are dropped from here on
        else:
            pytest.fail("the accept queue never filled")
        yield port


def _wait_alive(client: httpx.Client, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if client.get("/healthz").status_code == 200:
                return
        time.sleep(0.05)
    pytest.fail("the frontend never answered /healthz")


def _metric(app: AppProcess, series: str) -> float:
    for line in httpx.get(app.metrics_url, timeout=5).text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_connect_that_times_out_is_retried_once_on_a_new_connection(
    frontend_factory: FrontendLauncher,
) -> None:
    """Nothing was sent when a connect times out, so the frontend tries once more on a new
    connection (behind a ClusterIP, kube-proxy picks again) before it answers 503."""
    with _black_hole() as port:
        # Not waited on through /readyz: its backend check against a black hole takes
        # its whole 1 s timeout, as long as the readiness poll's own.
        app = frontend_factory(
            f"http://127.0.0.1:{port}",
            pod_name="frontend-black-hole",
            wait_ready=False,
            backend_connect_timeout_seconds="0.3",
        )
        with httpx.Client(base_url=app.url, timeout=20) as client:
            _wait_alive(client)
            before = _metric(app, "backend_retries_total")
            listed = client.get("/api/messages")
            assert listed.status_code == 503, listed.text
            assert listed.json()["failed_hop"] == "address"
            assert "ConnectTimeout" in listed.json()["message"]
            assert _metric(app, "backend_retries_total") == before + 1
