"""The aiohttp transport under the shared httpx client, against small loopback servers.

What the rest of the frontend relies on: httpx's exception types keep their
meaning (the retry and the route panel's failed hop read them), no silent
retry on another pooled connection, truthful facts about the connection
used, keep-alive expiry and `Connection: close` honoured, pool limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from frontend.backend_client import Attempt, BackendHttpClient
from frontend.transport import AiohttpTransport, ConnectionInfo

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[bool]]


def _reply(body: bytes = b'{"ok": true}', *, close: bool = False, extra: str = "") -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n{extra}"
        + ("connection: close\r\n" if close else "")
        + "\r\n"
    )
    return head.encode() + body


async def _read_request(reader: asyncio.StreamReader) -> bool:
    """Read one request's head (the tests send no bodies); False at end of stream."""
    try:
        await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return False
    return True


@contextlib.asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A server on a free loopback port; yields its URL and a list counting
    the connections it accepted. `handler(reader, writer, n)` answers the
    n-th request (from 1) on a connection and says whether to go on."""
    accepted: list[int] = []

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        n = 0
        try:
            while await _read_request(reader):
                n += 1
                if not await handler(reader, writer, n):
                    break
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    server = await asyncio.start_server(connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", accepted
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)


def _client(
    max_connections: int = 10, keepalive: float | None = 20.0, **timeouts: float
) -> BackendHttpClient:
    return BackendHttpClient(
        transport=AiohttpTransport(max_connections=max_connections, keepalive_expiry=keepalive),
        timeout=httpx.Timeout(
            timeouts.get("all", 2.0), **{k: v for k, v in timeouts.items() if k != "all"}
        ),
        trust_env=False,
    )


async def _get(client: httpx.AsyncClient, url: str) -> tuple[httpx.Response, Attempt]:
    attempt = Attempt(fresh_client=False)
    response = await client.send(client.build_request("GET", url, extensions={"observer": attempt}))
    return response, attempt


async def _fails(client: httpx.AsyncClient, url: str) -> tuple[httpx.HTTPError, Attempt]:
    attempt = Attempt(fresh_client=False)
    with pytest.raises(httpx.HTTPError) as caught:
        await client.send(client.build_request("GET", url, extensions={"observer": attempt}))
    return caught.value, attempt


async def _answer(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int) -> bool:
    writer.write(_reply())
    await writer.drain()
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_kept_alive_connection_facts() -> None:
    async def run() -> None:
        async with serve(_answer) as (url, accepted), _client() as client:
            first, a1 = await _get(client, url + "/")
            second, a2 = await _get(client, url + "/")
            assert first.json() == {"ok": True} and second.status_code == 200
            assert a1.new_connection and a1.connect_ms is not None and a1.stage == "send"
            assert not a2.new_connection and a2.connect_ms is None and a2.stage == "send"
            i1, i2 = first.extensions["connection"], second.extensions["connection"]
            assert isinstance(i1, ConnectionInfo) and isinstance(i2, ConnectionInfo)
            assert (i1.requests, i2.requests) == (1, 2)
            assert i1.local == i2.local and i1.peer == i2.peer
            assert i1.peer[1] == httpx.URL(url).port
            assert i2.age_s >= i1.age_s
            assert len(accepted) == 1

    asyncio.run(run())


def test_connection_close_and_keepalive_expiry_open_new_connections() -> None:
    async def closing(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int) -> bool:
        writer.write(_reply(close=True))  # as the backend does past MAX_CONNECTION_AGE
        await writer.drain()
        return False

    async def run() -> None:
        async with serve(closing) as (url, accepted), _client() as client:
            for _ in range(3):
                _, attempt = await _get(client, url + "/")
                assert attempt.new_connection
            assert len(accepted) == 3
        async with serve(_answer) as (url, accepted), _client(keepalive=0.2) as client:
            await _get(client, url + "/")
            _, reused = await _get(client, url + "/")
            await asyncio.sleep(0.5)  # idle past the expiry
            _, expired = await _get(client, url + "/")
            assert not reused.new_connection and expired.new_connection
            assert len(accepted) == 2
        async with serve(_answer) as (url, accepted), _client(keepalive=None) as client:
            for _ in range(2):
                _, attempt = await _get(client, url + "/")
                assert attempt.new_connection  # a pool that keeps nothing
            assert len(accepted) == 2

    asyncio.run(run())


def test_a_refused_or_unresolvable_connect_is_a_connect_error() -> None:
    async def run() -> None:
        async with _client() as client:
            port = _free_port()
            error, attempt = await _fails(client, f"http://127.0.0.1:{port}/")
            assert isinstance(error, httpx.ConnectError)
            assert str(error) == f"Connection refused (127.0.0.1:{port})"  # for the panel
            assert attempt.stage == "connect" and attempt.new_connection
            error, attempt = await _fails(client, "http://no-such-backend.invalid:8000/")
            assert isinstance(error, httpx.ConnectError) and attempt.stage == "connect"
            assert "no-such-backend.invalid:8000" in str(error)

    asyncio.run(run())


def test_a_server_that_hangs_up_is_a_protocol_error() -> None:
    async def hang_up(_r: asyncio.StreamReader, _w: asyncio.StreamWriter, _n: int) -> bool:
        return False

    async def run() -> None:
        async with serve(hang_up) as (url, _), _client() as client:
            error, attempt = await _fails(client, url + "/")
            assert isinstance(error, httpx.RemoteProtocolError)
            assert attempt.stage == "send" and attempt.new_connection

    asyncio.run(run())


def test_a_silent_server_is_a_read_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, _w: asyncio.StreamWriter, _n: int) -> bool:
        await reader.read()  # until the client gives up
        return False

    async def run() -> None:
        async with serve(silent) as (url, _), _client(all=2.0, read=0.3) as client:
            error, _ = await _fails(client, url + "/")
            assert isinstance(error, httpx.ReadTimeout)

    asyncio.run(run())


def test_a_full_pool_is_a_pool_timeout() -> None:
    release = asyncio.Event()

    async def slow(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int) -> bool:
        await release.wait()
        writer.write(_reply())
        await writer.drain()
        return True

    async def run() -> None:
        async with serve(slow) as (url, _), _client(1, all=5.0, pool=0.2, connect=0.2) as client:
            holder = asyncio.ensure_future(_get(client, url + "/"))
            await asyncio.sleep(0.1)
            error, attempt = await _fails(client, url + "/")
            assert isinstance(error, httpx.PoolTimeout) and attempt.stage == "pool"
            release.set()
            response, _ = await holder
            assert response.status_code == 200

    asyncio.run(run())


def test_a_dead_kept_alive_connection_fails_instead_of_a_silent_retry() -> None:
    # Every connection answers its first request and resets on the second,
    # as a pooled connection to a vanished pod does. aiohttp on its own
    # would quietly try again on another connection; the frontend wants to
    # see the failure, retry on a *new* connection and say so in the panel.
    async def once(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> bool:
        if n > 1:
            writer.transport.abort()
            return False
        writer.write(_reply())
        await writer.drain()
        return True

    async def run() -> None:
        async with serve(once) as (url, accepted), _client() as client:
            await _get(client, url + "/")
            error, attempt = await _fails(client, url + "/")
            assert isinstance(error, httpx.RemoteProtocolError | httpx.ReadError)
            assert not attempt.new_connection and attempt.stage == "send"
            assert len(accepted) == 1

    asyncio.run(run())


def test_the_shared_client_keeps_no_cookies() -> None:
    async def cookie(_r: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int) -> bool:
        writer.write(_reply(extra="set-cookie: session=visitor-1; Path=/\r\n"))
        await writer.drain()
        return True

    async def run() -> None:
        async with serve(cookie) as (url, _), _client() as client:
            response, _ = await _get(client, url + "/")
            assert response.headers["set-cookie"].startswith("session=")
            assert not client.cookies  # never sent along with the next visitor's call
            request = client.build_request("GET", url + "/")
            assert "cookie" not in request.headers

    asyncio.run(run())
