"""The spread view is bounded (issue 26, item 4): a deadline, the first timeout ends it,
a client that leaves cancels it, and a pod runs only a few at once.

The backend is stalled with SIGSTOP: its kernel still accepts connections, nothing
answers them, as with a pod whose process hangs.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import BackendLauncher
from tests.support.apps import AppProcess
from tests.support.frontends import FrontendLauncher
from tests.support.waiting import wait_until


def established_to(port: int) -> int:
    """Open TCP connections (any process on this host) whose far end is `port`."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            remote, state = fields[2], fields[3]
            if state == "01" and int(remote.rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


class Stalled:
    def __init__(self, backend: AppProcess, frontend: AppProcess) -> None:
        self.backend = backend
        self.frontend = frontend


@pytest.fixture
def stalled(tmp_path: Path) -> Iterator[Stalled]:
    backends, frontends = BackendLauncher(tmp_path), FrontendLauncher(tmp_path)
    try:
        backend = backends(pod_name="backend-stalled")
        frontend = frontends(
            backend.url,
            backend_read_timeout_seconds="5",
            spread_deadline_seconds="2",
            spread_concurrency="2",
        )
        backend.signal(signal.SIGSTOP)
        try:
            yield Stalled(backend, frontend)
        finally:
            backend.signal(signal.SIGCONT)
    finally:
        frontends.stop_all()
        backends.stop_all()


def test_a_stalled_backend_ends_the_spread_by_its_deadline(stalled: Stalled) -> None:
    # Unbounded, this took n read timeouts on the kept-alive run alone (50 s here):
    # the client's own timeout below would fail the test.
    response = httpx.get(f"{stalled.frontend.url}/api/spread", params={"n": 10}, timeout=15)
    assert response.status_code == 503
    body = response.json()
    for run in ("fresh_connections", "one_kept_alive_connection"):
        assert body[run]["answered"] == 0
        assert body[run]["failed"] == 10
    reasons = " ".join(
        body["fresh_connections"]["errors"] + body["one_kept_alive_connection"]["errors"]
    )
    assert "not sent" in reasons, reasons


def test_the_first_timeout_ends_the_spread(tmp_path: Path) -> None:
    backends, frontends = BackendLauncher(tmp_path), FrontendLauncher(tmp_path)
    try:
        backend = backends(pod_name="backend-slow")
        frontend = frontends(
            backend.url, backend_read_timeout_seconds="1", spread_deadline_seconds="60"
        )
        backend.signal(signal.SIGSTOP)
        try:
            response = httpx.get(f"{frontend.url}/api/spread", params={"n": 20}, timeout=15)
        finally:
            backend.signal(signal.SIGCONT)
    finally:
        frontends.stop_all()
        backends.stop_all()
    body = response.json()
    fresh, kept = body["fresh_connections"], body["one_kept_alive_connection"]
    # Eight went out together and timed out; the other twelve were never sent,
    # and neither was the kept-alive run.
    assert any("20x" not in e and "timed out" in e for e in fresh["errors"]), fresh
    assert any("not sent: an earlier request timed out" in e for e in fresh["errors"]), fresh
    assert kept["errors"] == ["20x not sent: an earlier request timed out"], kept


def test_a_client_that_leaves_cancels_its_spread(stalled: Stalled) -> None:
    port = stalled.backend.port
    before = established_to(port)  # kept-alive ones of the pool, from before the stall
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{stalled.frontend.url}/api/spread", params={"n": 8}, timeout=0.5)
    # The spread was cancelled with its backend calls, well before its deadline
    # would have ended them (wait_until gives up after 1.5 s).
    wait_until(lambda: '"status": 499' in stalled.frontend.logs(), timeout=1.5)
    wait_until(lambda: established_to(port) <= before, timeout=1.5)


def test_a_pod_runs_only_so_many_spreads_at_once(stalled: Stalled) -> None:
    url = f"{stalled.frontend.url}/api/spread"
    results: list[int] = []

    def spread() -> None:
        results.append(httpx.get(url, params={"n": 2}, timeout=15).status_code)

    running = [threading.Thread(target=spread) for _ in range(2)]
    for thread in running:
        thread.start()
    wait_until(lambda: established_to(stalled.backend.port) >= 2, timeout=5)
    busy = httpx.get(url, params={"n": 2}, timeout=15)
    page = httpx.get(f"{stalled.frontend.url}/spread", params={"n": 2}, timeout=15)
    for thread in running:
        thread.join(timeout=15)
    assert busy.status_code == 429
    assert busy.json()["error"] == "spread_busy"
    assert busy.headers["retry-after"] == "1"
    assert page.status_code == 429 and "already running 2 spreads" in page.text
    assert results == [503, 503]
    # Once they are done, a spread runs again.
    assert httpx.get(url, params={"n": 1}, timeout=15).status_code == 503
