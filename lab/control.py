"""The running lab's control socket (root only): the node's view, and the node's faults.

One JSON request per connection, one JSON answer: {"cmd": "status"} (the pods as the
kubelet runs them, the rules kube-proxy wrote), {"cmd": "kill", "pod": …} (a container's
process signalled, as `kill -9 <pid>` on the node would). Objects are the API server's:
kubectl reads and writes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
from pathlib import Path
from typing import Any

from lab.cluster import Lab
from lab.state import CONTROL_SOCKET


class ControlError(RuntimeError):
    pass


def _dispatch(lab: Lab, request: dict[str, Any]) -> dict[str, Any]:
    cmd = request.get("cmd")
    if cmd == "status":
        return lab.status()
    if cmd == "kill":
        sig = signal.Signals[f"SIG{str(request.get('signal', 'KILL')).upper().removeprefix('SIG')}"]
        pid = lab.kill(request["pod"], request.get("container"), sig)
        return {"pid": pid, "signal": sig.name}
    if cmd == "node":
        return {"message": lab.node_action(str(request["action"]), str(request["node"]))}
    raise ValueError(f"unknown command {cmd!r}")


class ControlServer:
    def __init__(self, lab: Lab, path: Path = CONTROL_SOCKET) -> None:
        self.lab = lab
        self.path = path
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old = os.umask(0o177)
        try:
            # A whole rendered manifest set fits in one request line.
            self.server = await asyncio.start_unix_server(
                self._handle, path=str(self.path), limit=8 * 1024 * 1024
            )
        finally:
            os.umask(old)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            try:
                answer = {"ok": True, "result": _dispatch(self.lab, json.loads(line))}
            except KeyError as exc:
                answer = {"ok": False, "error": str(exc.args[0]) if exc.args else "not found"}
            except (ValueError, ProcessLookupError, TypeError) as exc:
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def request(cmd: str, timeout: float = 10.0, path: Path = CONTROL_SOCKET, **fields: Any) -> Any:
    """Ask the running lab; raises ControlError when there is none or it refuses."""
    payload = json.dumps({"cmd": cmd, **fields}).encode() + b"\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ControlError("no lab is running (start one with `sudo make lab`)") from exc
        sock.sendall(payload)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    answer = json.loads(b"".join(chunks) or b"{}")
    if not answer.get("ok"):
        raise ControlError(answer.get("error", "no answer"))
    return answer["result"]
