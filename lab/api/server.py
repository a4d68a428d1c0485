"""Start the API server: credentials, bootstrap objects, controllers, HTTPS on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from lab.api import bootstrap, kubeconfig, tls
from lab.api.controllers import (
    deployment,
    disruption,
    endpointslice,
    loop,
    namespace,
    nodelifecycle,
    replicaset,
    rootca,
    scheduler,
    serviceaccount,
    statefulset,
)
from lab.api.http import ApiServer
from lab.api.podexec import Kubelet
from lab.api.podlogs import PodLogs
from lab.api.storage import Store
from lab.api.websocket import LenientWebSocketProtocol

HOST = "127.0.0.1"  # never anything but loopback
CONTROLLERS = (
    ("deployment", deployment),
    ("replicaset", replicaset),
    ("scheduler", scheduler),
    ("statefulset", statefulset),
    ("endpointslice", endpointslice),
    ("serviceaccount", serviceaccount),
    ("namespace", namespace),
    ("disruption", disruption),
    ("nodelifecycle", nodelifecycle),
)
STATE_FILE = "apiserver.json"


@dataclass
class Running:
    """A started API server: where it is and how to reach it."""

    port: int
    credentials: tls.Credentials
    store: Store
    workdir: Path
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.port}"

    def kubeconfig(self) -> dict[str, Any]:
        return kubeconfig.standalone(self.url, self.credentials.ca_pem, self.credentials.token)


def _bound_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it a response written in two pieces
    # waits for the client's delayed ACK, 40 ms on every request.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((HOST, port))
    return sock


def write_state(running: Running) -> Path:
    """What `python -m lab kubeconfig` reads: the address, CA and token (mode 0600)."""
    path = running.workdir / STATE_FILE
    body = {
        "server": running.url,
        "ca": running.credentials.ca_pem.decode(),
        "token": running.credentials.token,
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(body, out)
    return path


async def serve(
    workdir: Path,
    port: int = 0,
    started: asyncio.Future[Running] | None = None,
    pods_dir: Path | None = None,
    kubelet: Kubelet | None = None,
    nodes: int = 1,
) -> None:
    """Serve until cancelled; `started` gets the Running server once it accepts connections."""
    sock = _bound_socket(port)
    port = sock.getsockname()[1]
    credentials = tls.make(workdir)
    store = Store()
    bootstrap.populate(store, port, nodes)
    running = Running(port, credentials, store, workdir)
    for name, module in CONTROLLERS:
        resync = getattr(module, "RESYNC", None)
        task = loop.run(store, name, module.WATCHED, module.reconcile, resync)
        running.tasks.append(asyncio.create_task(task))
    publisher = rootca.reconciler(credentials.ca_pem)
    running.tasks.append(asyncio.create_task(loop.run(store, "rootca", rootca.WATCHED, publisher)))
    logs = PodLogs(pods_dir) if pods_dir is not None else None
    app = ApiServer(store, credentials.token, f"{HOST}:{port}", logs, kubelet)
    config = uvicorn.Config(
        app,
        ssl_certfile=str(credentials.cert_file),
        ssl_keyfile=str(credentials.key_file),
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=1,
        ws=LenientWebSocketProtocol,  # port-forward's subprotocol: lab/api/websocket.py
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    # uvicorn offers no event to await for "listening".
    while not server.started and not serving.done():  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    write_state(running)
    if started is not None and not started.done():
        started.set_result(running)
    try:
        await serving
    finally:
        server.should_exit = True
        store.stop_all()
        for task in running.tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*running.tasks, return_exceptions=True)
        sock.close()


class InThread:
    """An API server on its own event loop in a thread: for tests and tools in one process."""

    def __init__(
        self,
        workdir: Path,
        port: int = 0,
        pods_dir: Path | None = None,
        kubelet: Kubelet | None = None,
        nodes: int = 1,
    ) -> None:
        self.workdir = workdir
        self.nodes = nodes
        self.port = port
        # The kubelet's container logs and exec, when a node runs beside.
        self.pods_dir = pods_dir
        self.kubelet = kubelet
        self.loop = asyncio.new_event_loop()
        self.running: Running | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="lab-apiserver", daemon=True
        )

    def start(self, timeout: float = 20.0) -> Running:
        self._thread.start()

        async def begin() -> Running:
            started: asyncio.Future[Running] = self.loop.create_future()
            self._task = asyncio.create_task(
                serve(self.workdir, self.port, started, self.pods_dir, self.kubelet, self.nodes)
            )
            return await started

        self.running = asyncio.run_coroutine_threadsafe(begin(), self.loop).result(timeout)
        return self.running

    def call(self, function: Any, *args: Any) -> Any:
        """Run a function on the server's loop (the store is not thread-safe)."""

        async def inside() -> Any:
            return function(*args)

        return asyncio.run_coroutine_threadsafe(inside(), self.loop).result(10)

    def stop(self) -> None:
        if self._task is not None:
            self.loop.call_soon_threadsafe(self._task.cancel)
            with contextlib.suppress(BaseException):
                asyncio.run_coroutine_threadsafe(asyncio.sleep(0.2), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
