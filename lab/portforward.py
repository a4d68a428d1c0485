"""127.0.0.1:<port> → a Service's ClusterIP, for the browser.

`kubectl port-forward svc/frontend` picks one pod and tunnels to it through
the API server. The lab has no API server, and the lesson is the ClusterIP, so
each browser connection is opened to the frontend Service's ClusterIP from the
host, where the lab's iptables rules pick a frontend pod for it.
"""

from __future__ import annotations

import asyncio
import contextlib


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


class PortForward:
    def __init__(self, listen_host: str, listen_port: int, target_ip: str, target_port: int):
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.target_ip = target_ip
        self.target_port = target_port
        self.server: asyncio.Server | None = None
        self.connections = 0
        self.failures = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(
            self._handle, self.listen_host, self.listen_port, reuse_address=True
        )

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_r, up_w = await asyncio.wait_for(
                asyncio.open_connection(self.target_ip, self.target_port), 5
            )
        except (OSError, TimeoutError):
            self.failures += 1
            client_w.close()
            return
        pipes = [
            asyncio.create_task(_pipe(client_r, up_w)),
            asyncio.create_task(_pipe(up_r, client_w)),
        ]
        try:
            _, pending = await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            # One side is done; the other normally follows at once. A peer that
            # vanished without a FIN must not pin the task forever.
            if pending:
                await asyncio.wait(pending, timeout=30)
        finally:
            for task in pipes:
                task.cancel()
            for writer in (up_w, client_w):
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)
