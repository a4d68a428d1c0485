"""pods/exec over a WebSocket: the channel protocol kubectl 1.30+ speaks first.

On a cluster kube-apiserver forwards the stream to the pod's kubelet, which asks the
container runtime to run the command in the container. Here the kubelet (lab/node/)
gives the argv that enters the container (its network namespace and user, or the
engine's `exec`), and this runs it. The wire format is `v5.channel.k8s.io` (or v4):
each binary message starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 the
final Status, 4 terminal resize, 255 (v5) a stream closed by the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import struct
import termios
from collections.abc import Awaitable, Coroutine
from typing import Any, Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


class Kubelet(Protocol):
    def exec_argv(
        self, pod: str, container: str, stdin: bool, tty: bool = False
    ) -> tuple[list[str], dict[str, str]] | None: ...


def chosen_protocol(offered: str) -> str | None:
    wanted = [p.strip() for p in offered.split(",") if p.strip()]
    return next((p for p in PROTOCOLS if p in wanted), None)


def exit_status(code: int, command: list[str]) -> dict[str, Any]:
    """The Status on channel 3, as the kubelet's remotecommand writes it."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": (
            f"command terminated with non-zero exit code: error executing command "
            f"[{' '.join(command)}], exit code {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def failure(message: str) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError"}


async def _pump(stream: asyncio.StreamReader | None, channel: int, ws: WebSocket) -> None:
    if stream is None:
        return
    while chunk := await stream.read(65536):
        await ws.send_bytes(bytes([channel]) + chunk)


async def _feed(ws: WebSocket, proc: asyncio.subprocess.Process) -> None:
    """The client's messages: stdin bytes, its close of stdin, resizes (no terminal here)."""
    while True:
        message = await ws.receive_bytes()
        if not message:
            continue
        channel, data = message[0], message[1:]
        if channel == STDIN and proc.stdin is not None:
            proc.stdin.write(data)
            with contextlib.suppress(ConnectionError):
                await proc.stdin.drain()
        elif channel == CLOSE and data[:1] == bytes([STDIN]) and proc.stdin is not None:
            proc.stdin.close()


async def _session(
    ws: WebSocket,
    proc: asyncio.subprocess.Process,
    command: list[str],
    output: Awaitable[Any],
    client_input: Coroutine[Any, Any, None],
) -> None:
    """Both ways of exec: the output until it ends, then the exit Status on channel 3;
    the client's input meanwhile. A client gone kills the command; it is always reaped."""
    feeder = asyncio.create_task(client_input)
    try:
        await output
        code = await proc.wait()
        await ws.send_bytes(bytes([ERROR]) + json.dumps(exit_status(code, command)).encode())
        await ws.close()
    except (WebSocketDisconnect, ConnectionError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
            await feeder
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def run(
    ws: WebSocket,
    argv: list[str],
    env: dict[str, str],
    command: list[str],
    stdin: bool,
    tty: bool = False,
) -> None:
    if tty:
        await run_in_terminal(ws, argv, env, command)
        return
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            *command,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        await ws.send_bytes(bytes([ERROR]) + json.dumps(failure(str(exc))).encode())
        await ws.close()
        return
    pumps = asyncio.gather(_pump(proc.stdout, STDOUT, ws), _pump(proc.stderr, STDERR, ws))
    await _session(ws, proc, command, pumps, _feed(ws, proc))


# -- with a terminal (`kubectl exec -it`) -------------------------------------------------


def _resize(fd: int, message: bytes) -> None:
    """Channel 4: {"Width": …, "Height": …}, the client's terminal size."""
    with contextlib.suppress(ValueError, OSError, KeyError, TypeError):
        size = json.loads(message)
        winsize = struct.pack("HHHH", int(size["Height"]), int(size["Width"]), 0, 0)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, winsize)


async def _terminal_out(master: int, ws: WebSocket) -> None:
    loop = asyncio.get_running_loop()
    while True:
        try:
            chunk = await loop.run_in_executor(None, os.read, master, 65536)
        except OSError:  # EIO: every process holding the terminal has exited
            return
        if not chunk:
            return
        await ws.send_bytes(bytes([STDOUT]) + chunk)


async def _terminal_in(ws: WebSocket, master: int) -> None:
    while True:
        message = await ws.receive_bytes()
        if not message:
            continue
        if message[0] == STDIN:
            os.write(master, message[1:])
        elif message[0] == RESIZE:
            _resize(master, message[1:])


async def run_in_terminal(
    ws: WebSocket, argv: list[str], env: dict[str, str], command: list[str]
) -> None:
    """The command on a new pseudo-terminal, its controlling terminal (`setsid --ctty`),
    as a runtime gives a container's exec with tty: stdout and stderr are one stream."""
    master, slave = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            "setsid", "--ctty", *argv, *command, stdin=slave, stdout=slave, stderr=slave, env=env
        )
    except OSError as exc:
        os.close(master)
        await ws.send_bytes(bytes([ERROR]) + json.dumps(failure(str(exc))).encode())
        await ws.close()
        return
    finally:
        os.close(slave)
    try:
        await _session(ws, proc, command, _terminal_out(master, ws), _terminal_in(ws, master))
    finally:
        os.close(master)
