"""The frontend under test, always in front of real backend processes.

Two session-wide stacks, started once because processes take a second each:
- `solo`: one backend on SQLite behind the name `localhost`, and two
  frontend replicas in front of it (as the Deployment runs two);
- `trio`: three backends on one SQLite file behind a TCP balancer that picks
  a backend per connection, as kube-proxy does for a ClusterIP, and one
  frontend whose BACKEND_URL points at the balancer.
Tests that stop a backend bring it back before they finish.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import BackendLauncher
from tests.support.apps import AppProcess
from tests.support.balancer import TcpBalancer
from tests.support.frontends import FrontendLauncher
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "var" / "screenshots"


# The variables the settings read, unset so a test sees the defaults or only what it sets.
_SETTINGS_ENV = (
    "BACKEND_URL",
    "BACKEND_KEEPALIVE_EXPIRY_SECONDS",
    "SPREAD_DEFAULT",
    "SPREAD_MAX",
    "PORT",
    "HOST",
    "RUNS_ON",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def start_all(apps: list[AppProcess]) -> None:
    """Wait for processes started with wait_ready=False, together."""
    for app in apps:
        app.wait_ready()


@dataclass
class Stack:
    backends: list[AppProcess]
    frontends: list[AppProcess]
    balancer: TcpBalancer | None = None
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def frontend(self) -> AppProcess:
        return self.frontends[0]

    def client(self, frontend: AppProcess | None = None) -> httpx.Client:
        """A fresh client (own cookie jar) for a frontend, closed at the end."""
        client = httpx.Client(
            base_url=(frontend or self.frontend).url, timeout=20, follow_redirects=False
        )
        self.clients.append(client)
        return client

    def revive(self) -> None:
        """Start again any backend a test stopped, on its old port."""
        dead = [b for b in self.backends if b.proc is None or b.proc.poll() is not None]
        for backend in dead:
            backend.proc = None
            backend.start(wait_ready=False)
        start_all(dead)

    def close(self) -> None:
        for client in self.clients:
            client.close()


@pytest.fixture(scope="session")
def solo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("frontend-solo")
    backends = BackendLauncher(workdir)
    frontends = FrontendLauncher(workdir)
    try:
        backend = backends(pod_name="backend-solo")
        # A name, not an address, so the route panel has a lookup to show.
        url = f"http://localhost:{backend.port}"
        replicas = [frontends(url, pod_name=f"frontend-{i}", wait_ready=False) for i in ("a", "b")]
        start_all(replicas)
        stack = Stack([backend], replicas)
        yield stack
        stack.close()
    finally:
        frontends.stop_all()
        backends.stop_all()


@pytest.fixture(scope="session")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("frontend-trio")
    backends = BackendLauncher(workdir)
    frontends = FrontendLauncher(workdir)
    balancer: TcpBalancer | None = None
    try:
        # The first call migrates the shared SQLite file; the others reuse it.
        pods = [backends(pod_name=f"backend-{x}", wait_ready=False) for x in "abc"]
        start_all(pods)
        balancer = TcpBalancer([(b.host, b.port) for b in pods], silent_backend_death=True).start()
        frontend = frontends(balancer.url, pod_name="frontend-trio")
        stack = Stack(pods, [frontend], balancer)
        yield stack
        stack.close()
    finally:
        frontends.stop_all()
        if balancer is not None:
            balancer.stop()
        backends.stop_all()


@pytest.fixture
def frontend_factory(tmp_path: Path) -> Iterator[FrontendLauncher]:
    launcher = FrontendLauncher(tmp_path)
    yield launcher
    launcher.stop_all()


# --- reading pages -----------------------------------------------------------------

_HIDDEN = re.compile(r'<input type="hidden" name="(?P<name>[^"]+)" value="(?P<value>[^"]*)">')
_HOP = re.compile(r'id="hop-(?P<key>[a-z]+)" data-state="(?P<state>[a-z ]+)"')


def hidden_fields(html: str) -> dict[str, str]:
    return {m["name"]: m["value"] for m in _HIDDEN.finditer(html)}


def hop_states(html: str) -> dict[str, str]:
    return {m["key"]: m["state"] for m in _HOP.finditer(html)}


def hop_html(html: str, key: str) -> str:
    start = html.index(f'id="hop-{key}"')
    end = html.find("</li>", start)
    return html[start:end]


def write_via_form(
    client: httpx.Client, author: str, text: str, **overrides: str
) -> httpx.Response:
    """Load the page as a browser would, then post its form."""
    page = client.get("/")
    fields = hidden_fields(page.text)
    data = fields | {"author": author, "text": text} | overrides
    return client.post("/messages", data=data)


def wait_for_pod_details(client: httpx.Client) -> None:
    """Wait until the frontend has learnt the backend pod its views reach.

    A pod met for the first time is asked about beside the page, not on its
    way: the view that meets it shows its name, the next ones its details.
    """

    def learnt() -> bool:
        hops = {hop["key"]: hop for hop in client.get("/api/route").json()["hops"]}
        return bool(hops["pod"]["detail"])

    wait_until(learnt, timeout=10)
