"""The HTTP contract beyond the API's own routes: Allow, HEAD, and the 413 a client always gets."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import BackendFactory, BackendLauncher
from tests.support.apps import AppProcess


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    launcher = BackendLauncher(tmp_path_factory.mktemp("contract"))
    yield launcher(pod_name="backend-contract")
    launcher.stop_all()


@pytest.fixture
def client(backend: AppProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=backend.url, timeout=10) as client:
        yield client


@pytest.mark.parametrize("method", ["OPTIONS", "DELETE", "PUT", "PATCH"])
def test_405_allows_every_method_of_the_path(client: httpx.Client, method: str) -> None:
    response = client.request(method, "/api/messages")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST"
    assert response.json()["error"] == "method_not_allowed"


def test_405_on_a_get_only_path(client: httpx.Client) -> None:
    response = client.post("/api/messages/1")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize("path", ["/api/messages", "/api/stats", "/api/info", "/healthz"])
def test_head_answers_like_get_without_a_body(client: httpx.Client, path: str) -> None:
    get = client.get(path)
    head = client.head(path)
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["x-served-by"] == "backend-contract"


def test_head_of_a_missing_message_is_404(client: httpx.Client) -> None:
    assert client.head("/api/messages/987654").status_code == 404


def write_all_then_read(port: int, headers: bytes, body: bytes) -> bytes:
    """What urllib and most scripts do: send the whole request, only then read."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(headers + body)
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply


@pytest.mark.parametrize("size", [2_000_000, 32_000_000])
def test_oversize_body_sent_whole_still_gets_its_413(backend: AppProcess, size: int) -> None:
    head = (
        b"POST /api/messages HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % size
    )
    body = b"x" * size
    # Before the server read the rest, 3-5 in 10 of these were reset at 2 MB.
    for attempt in range(10):
        reply = write_all_then_read(backend.port, head, body)
        assert reply.startswith(b"HTTP/1.1 413"), (attempt, reply[:200])
        assert b"connection: close" in reply.lower()


def test_oversize_chunked_body_sent_whole_gets_its_413(backend: AppProcess) -> None:
    chunk = b"x" * 65536
    head = (
        b"POST /api/messages HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    body = (f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n") * 32 + b"0\r\n\r\n"
    for attempt in range(10):
        reply = write_all_then_read(backend.port, head, body)
        assert reply.startswith(b"HTTP/1.1 413"), (attempt, reply[:200])


def test_a_body_past_the_drain_bound_is_not_read(backend_factory: BackendFactory) -> None:
    # Past the bound the server answers at once and closes: it does not wait
    # for (or read) a body it would only throw away.
    app = backend_factory(body_drain_max_bytes="1000000")
    head = (
        b"POST /api/messages HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2000000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
        sock.sendall(head)  # and no body: an answer now proves nothing was awaited
        assert sock.recv(4096).startswith(b"HTTP/1.1 413")


def test_expect_continue_gets_the_413_without_sending_the_body(backend: AppProcess) -> None:
    head = (
        b"POST /api/messages HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2000000\r\nExpect: 100-continue\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", backend.port), timeout=10) as sock:
        sock.sendall(head)
        assert sock.recv(4096).startswith(b"HTTP/1.1 413")
