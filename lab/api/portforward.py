"""pods/portforward: `kubectl port-forward`'s streams to a pod's ports.

kubectl 1.31+ tunnels SPDY/3.1 through a WebSocket (subprotocol
`SPDY/3.1+portforward.k8s.io`, raw SPDY bytes in binary messages). For each local
connection it opens two streams with the same `requestid`: an error stream and a data
stream, both naming the `port`. The kubelet connects to the pod's port and copies bytes
both ways; a failure is written on the error stream. Here the API server, beside the
node, connects to the pod's address (a cluster's kubelet connects inside the pod's
network namespace: the same for any container that listens on the pod's address).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from lab.api.spdy import frames
from lab.api.spdy.frames import Frame, HeaderCodec, Parser

PROTOCOL = "SPDY/3.1+portforward.k8s.io"
Send = Callable[[bytes], Awaitable[None]]


@dataclass
class Pair:
    port: int
    error_stream: int = 0
    data_stream: int = 0
    pending: list[bytes] = field(default_factory=list)
    client_done: bool = False
    writer: asyncio.StreamWriter | None = None
    task: asyncio.Task[None] | None = None


class PortForwardSession:
    def __init__(self, send: Send, pod: str, uid: str, address: str) -> None:
        self.send = send
        self.pod, self.uid, self.address = pod, uid, address
        self.codec = HeaderCodec()
        self.parser = Parser(self.codec)
        self.pairs: dict[str, Pair] = {}
        self.by_stream: dict[int, Pair] = {}

    async def feed(self, data: bytes) -> None:
        for frame in self.parser.feed(data):
            if frame.control:
                await self._control(frame)
            else:
                await self._data(frame)

    async def _control(self, frame: Frame) -> None:
        if frame.kind == frames.SYN_STREAM:
            await self._open(frame)
        elif frame.kind == frames.RST_STREAM:
            pair = self.by_stream.get(frame.stream_id)
            if pair is not None:
                self._close(pair)
        elif frame.kind == frames.PING:
            await self.send(frames.ping(frame.status))

    async def _open(self, frame: Frame) -> None:
        headers = frame.headers
        await self.send(frames.syn_reply(self.codec, frame.stream_id, {}))
        request = headers.get("requestid", str(frame.stream_id))
        try:
            port = int(headers.get("port", ""))
        except ValueError:
            await self.send(frames.rst_stream(frame.stream_id, 1))  # PROTOCOL_ERROR
            return
        pair = self.pairs.setdefault(request, Pair(port))
        self.by_stream[frame.stream_id] = pair
        if headers.get("streamtype") == "error":
            pair.error_stream = frame.stream_id
        else:
            pair.data_stream = frame.stream_id
            pair.task = asyncio.create_task(self._forward(pair))

    async def _data(self, frame: Frame) -> None:
        pair = self.by_stream.get(frame.stream_id)
        if pair is None or frame.stream_id != pair.data_stream:
            return
        if frame.data:
            if pair.writer is None:
                pair.pending.append(frame.data)
            else:
                pair.writer.write(frame.data)
                with contextlib.suppress(ConnectionError):
                    await pair.writer.drain()
        if frame.fin:
            pair.client_done = True
            if pair.writer is not None and pair.writer.can_write_eof():
                with contextlib.suppress(OSError):
                    pair.writer.write_eof()

    async def _forward(self, pair: Pair) -> None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.address, pair.port), 10
            )
        except (OSError, TimeoutError) as exc:
            message = (
                f"error forwarding port {pair.port} to pod {self.pod}, uid {self.uid}: "
                f"{exc.__class__.__name__}: {exc}"
            )
            if pair.error_stream:
                await self.send(frames.data(pair.error_stream, message.encode(), fin=True))
            await self.send(frames.data(pair.data_stream, b"", fin=True))
            return
        pair.writer = writer
        for chunk in pair.pending:
            writer.write(chunk)
        pair.pending.clear()
        if pair.client_done and writer.can_write_eof():
            writer.write_eof()
        try:
            while chunk := await reader.read(65536):
                for frame in frames.chunks(pair.data_stream, chunk):
                    await self.send(frame)
        except ConnectionError:
            pass
        finally:
            with contextlib.suppress(Exception):
                await self.send(frames.data(pair.data_stream, b"", fin=True))
                if pair.error_stream:
                    await self.send(frames.data(pair.error_stream, b"", fin=True))
            writer.close()

    def _close(self, pair: Pair) -> None:
        if pair.task is not None:
            pair.task.cancel()
        if pair.writer is not None:
            pair.writer.close()

    def close(self) -> None:
        for pair in self.pairs.values():
            self._close(pair)
