"""A tiny TCP balancer: what kube-proxy does to a ClusterIP, per connection, in user space.

For each new client connection it picks one backend at random and pipes the
bytes both ways until one side closes; every request on that connection then
reaches the same backend, exactly as with kube-proxy's iptables rules
(`statistic --mode random`, then DNAT). A backend that refuses the connection
is skipped for another, as kube-proxy stops choosing a pod once its endpoint
is removed; when none accepts, the client's connection is reset.

`silent_backend_death=True` models a pod that vanishes without a goodbye
(node gone, network namespace torn down): when a backend's side of a piped
connection dies, the client's side is left open, and only reset when the
client next sends on it. A pooled client connection then fails on reuse,
which is what the frontend's retry on a fresh connection is for.

The event loop runs in its own thread so synchronous tests can use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections import Counter
from collections.abc import Sequence

Address = tuple[str, int]

_CHUNK = 65_536


class TcpBalancer:
    def __init__(
        self,
        backends: Sequence[Address],
        *,
        silent_backend_death: bool = False,
        host: str = "127.0.0.1",
        seed: int | None = None,
    ) -> None:
        self.backends = list(backends)
        self.silent_backend_death = silent_backend_death
        self.host = host
        self.port = 0
        # Connections handed to each backend, and client connections no
        # backend would take.
        self.picks: Counter[Address] = Counter()
        self.refused = 0
        self._random = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> TcpBalancer:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        future.result(timeout=10)
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def __enter__(self) -> TcpBalancer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            _abort(writer)
        finally:
            self._tasks.discard(task)
            await _close(writer)

    async def _connect_upstream(
        self,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for backend in self._random.sample(self.backends, len(self.backends)):
            try:
                upstream = await asyncio.wait_for(asyncio.open_connection(*backend), timeout=2)
            except (OSError, TimeoutError):
                continue  # a dead endpoint: try another, as after its removal
            self.picks[backend] += 1
            return upstream
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await self._connect_upstream()
        if upstream is None:
            self.refused += 1
            _abort(writer)  # like a port nobody holds
            return
        up_reader, up_writer = upstream
        to_backend = asyncio.ensure_future(_pipe(reader, up_writer))
        to_client = asyncio.ensure_future(_pipe(up_reader, writer))
        try:
            done, _ = await asyncio.wait(
                {to_backend, to_client}, return_when=asyncio.FIRST_COMPLETED
            )
            if self.silent_backend_death and to_client in done and not to_backend.done():
                # The backend went away; the client is not told. Whatever it
                # sends next finds the connection dead.
                to_backend.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await to_backend
                with contextlib.suppress(OSError):
                    await reader.read(1)
                _abort(writer)
        finally:
            for task in (to_backend, to_client):
                task.cancel()
            await asyncio.gather(to_backend, to_client, return_exceptions=True)
            await _close(up_writer)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close after sending what is buffered (a no-op on an aborted transport)."""
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), timeout=2)


def _abort(writer: asyncio.StreamWriter) -> None:
    """Reset the connection: the peer sees it die, not end."""
    with contextlib.suppress(Exception):
        writer.transport.abort()
