"""Several backends behind one address, balanced per connection as kube-proxy does.

The `trio` stack puts three backend processes behind a TCP balancer that
picks a backend for each new connection; the frontend's BACKEND_URL points
at the balancer, as it points at the `backend` ClusterIP on Kubernetes.
"""

from __future__ import annotations

import signal

import httpx

from tests.frontend.conftest import Stack, hop_states

PODS = {"backend-a", "backend-b", "backend-c"}


def _pod(route: dict) -> str:
    return {hop["key"]: hop for hop in route["hops"]}["pod"]["value"]


def _sample(metrics_text: str, series: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_new_connections_spread_and_a_kept_alive_one_does_not(trio: Stack) -> None:
    response = trio.client().get("/api/spread", params={"n": 30})
    assert response.status_code == 200
    body = response.json()
    fresh, kept = body["fresh_connections"], body["one_kept_alive_connection"]
    print(f"\nspread over 3 backends, n=30: fresh={fresh['pods']} kept-alive={kept['pods']}")

    assert fresh["connections_opened"] == 30 and fresh["failed"] == 0
    assert sum(fresh["pods"].values()) == 30
    assert set(fresh["pods"]) <= PODS
    assert len(fresh["pods"]) >= 2, f"30 new connections all reached one pod: {fresh['pods']}"

    assert kept["connections_opened"] == 1 and kept["failed"] == 0
    assert len(kept["pods"]) == 1 and sum(kept["pods"].values()) == 30


def test_spread_page_draws_a_bar_per_pod(trio: Stack) -> None:
    html = trio.client().get("/spread", params={"n": 30}).text
    fresh_chart, kept_chart = html.split('<svg class="chart"')[1:3]
    assert sum(f">{pod}</text>" in fresh_chart for pod in PODS) >= 2
    assert sum(f">{pod}</text>" in kept_chart for pod in PODS) == 1


def test_a_killed_backend_is_retried_on_a_new_connection(trio: Stack) -> None:
    client = trio.client()
    try:
        first = client.get("/api/route").json()
        victim_name = _pod(first)
        victim = next(b for b in trio.backends if b.env["POD_NAME"] == victim_name)
        retries_before = _sample(httpx.get(trio.frontend.metrics_url).text, "backend_retries_total")
        # Gone without a goodbye: the frontend's pooled connection still looks
        # alive, and fails only when the next request is sent on it.
        victim.signal(signal.SIGKILL)
        victim.proc.wait(timeout=10)

        second = client.get("/api/route")
        assert second.status_code == 200, second.text
        route = second.json()
        assert route["ok"] is True
        assert route["retried"] is True
        assert _pod(route) in PODS - {victim_name}
        address = {hop["key"]: hop for hop in route["hops"]}["address"]
        assert "retried once on a new connection" in address["detail"]
        retries_after = _sample(httpx.get(trio.frontend.metrics_url).text, "backend_retries_total")
        assert retries_after == retries_before + 1

        page = client.get("/")  # and the page keeps working
        assert page.status_code == 200
        assert victim_name not in page.text.split('id="hop-pod"')[1].split("</li>")[0]
    finally:
        trio.revive()


def test_a_post_is_retried_only_with_its_idempotency_key(trio: Stack) -> None:
    client = trio.client()
    try:
        victim_name = _pod(client.get("/api/route").json())
        victim = next(b for b in trio.backends if b.env["POD_NAME"] == victim_name)
        victim.signal(signal.SIGKILL)
        victim.proc.wait(timeout=10)
        # The frontend adds a key when the script sent none, so the write is
        # retried on a new connection and made exactly once.
        created = client.post("/api/messages", json={"author": "Retry", "text": "once only"})
        assert created.status_code == 201, created.text
        assert created.headers["x-backend-pod"] in PODS - {victim_name}
    finally:
        trio.revive()


def test_all_backends_down_is_a_503_page_with_a_banner(trio: Stack) -> None:
    client = trio.client()
    try:
        for backend in trio.backends:
            backend.kill()
        page = client.get("/")
        assert page.status_code == 503
        assert 'class="banner banner-error" role="alert"' in page.text
        assert "The backend is unreachable" in page.text
        states = hop_states(page.text)
        assert "failed" in states.values()
        assert states["data"] == "not reached"
        assert '<form method="post" action="/messages"' in page.text  # still a page
        route = client.get("/api/route")
        assert route.status_code == 503 and route.json()["ok"] is False
        spread = client.get("/api/spread", params={"n": 3})
        assert spread.status_code == 503
        assert client.get("/readyz").status_code == 200  # stays in its Service
    finally:
        trio.revive()
    assert client.get("/").status_code == 200  # and recovers with no restart
