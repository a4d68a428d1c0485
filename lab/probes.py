"""Probes and preStop hooks, run the way the kubelet runs them.

- httpGet: from the node (the host) to podIP:port, `User-Agent: kube-probe/…`,
  no keep-alive; 200-399 is success. The kubelet probes from the node too.
- tcpSocket: a TCP connect from the node to podIP:port.
- exec: the command runs inside the pod's network namespace (so 127.0.0.1 is
  the pod's own loopback), as the container's user, with its environment.
  When a command the probe names is not installed on this host, a known probe
  is mapped to its network equivalent: `mysqladmin ping` → read the server's
  handshake on the container's port; `redis-cli ping` → send PING, expect PONG.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass

from lab.manifests import Container, Probe

USER_AGENT = "kube-probe/1.32"


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str


async def http_get(ip: str, port: int, path: str, seconds: float) -> ProbeResult:
    async def go() -> ProbeResult:
        reader, writer = await asyncio.open_connection(ip, port)
        try:
            writer.write(
                (
                    f"GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nUser-Agent: {USER_AGENT}\r\n"
                    "Accept: */*\r\nConnection: close\r\n\r\n"
                ).encode()
            )
            await writer.drain()
            status_line = await reader.readline()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        parts = status_line.decode("latin-1").split()
        if len(parts) < 2 or not parts[1].isdigit():
            return ProbeResult(False, f"bad status line {status_line!r}")
        status = int(parts[1])
        return ProbeResult(200 <= status < 400, f"HTTP {status}")

    try:
        return await asyncio.wait_for(go(), seconds)
    except TimeoutError:
        return ProbeResult(False, f"timeout after {seconds:g}s")
    except OSError as exc:
        return ProbeResult(False, f"{type(exc).__name__}: {exc}")


async def tcp_connect(ip: str, port: int, seconds: float) -> ProbeResult:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), seconds)
    except TimeoutError:
        return ProbeResult(False, f"timeout after {seconds:g}s")
    except OSError as exc:
        return ProbeResult(False, f"{type(exc).__name__}: {exc}")
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return ProbeResult(True, "connected")


async def mysql_handshake(ip: str, port: int, seconds: float) -> ProbeResult:
    """What `mysqladmin ping` proves: a server answers with its handshake packet."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), seconds)
        try:
            header = await asyncio.wait_for(reader.readexactly(5), seconds)
        finally:
            writer.close()
    except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
        return ProbeResult(False, f"no handshake: {type(exc).__name__}")
    # byte 4 is the protocol version (10) in a handshake, 0xff in an error packet
    # such as "too many connections" — either way the server is alive.
    return ProbeResult(header[4] in (10, 0xFF), "handshake")


async def redis_ping(ip: str, port: int, seconds: float) -> ProbeResult:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), seconds)
        try:
            writer.write(b"PING\r\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), seconds)
        finally:
            writer.close()
    except (TimeoutError, OSError) as exc:
        return ProbeResult(False, f"{type(exc).__name__}")
    return ProbeResult(line.startswith(b"+PONG"), line.decode(errors="replace").strip())


def _programs(command: tuple[str, ...]) -> list[str]:
    """The programs an exec probe runs: argv[0], or each command word of a `sh -c` script."""
    if len(command) >= 3 and command[0] in ("sh", "/bin/sh", "bash") and command[1] == "-c":
        words: list[str] = []
        for segment in re.split(r"[|;&]+", command[2]):
            try:
                parts = shlex.split(segment)
            except ValueError:
                continue
            if parts:
                words.append(parts[0])
        return [command[0], *words]
    return [command[0]] if command else []


def exec_fallback(command: tuple[str, ...]) -> str | None:
    """The network check standing in for an exec probe whose programs are missing here."""
    text = " ".join(command)
    if re.search(r"\b(mysqladmin|mariadb-admin)\b.*\bping\b", text):
        return "mysql"
    if re.search(r"\bredis-cli\b.*\bping\b", text, re.IGNORECASE):
        return "redis"
    return None


def exec_runnable(command: tuple[str, ...]) -> bool:
    return all(shutil.which(p) for p in _programs(command))


async def run_exec(argv: list[str], env: Mapping[str, str], seconds: float) -> ProbeResult:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dict(env),
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), seconds)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return ProbeResult(False, f"exec timed out after {seconds:g}s")
    text = out.decode(errors="replace").strip()[-200:]
    return ProbeResult(proc.returncode == 0, f"exit {proc.returncode} {text}".strip())


async def run_probe(
    probe: Probe,
    container: Container,
    pod_ip: str,
    exec_prefix: list[str],
    env: Mapping[str, str],
) -> ProbeResult:
    """One probe attempt. exec_prefix enters the pod's namespace as the container's user."""
    if probe.kind in ("httpGet", "tcpSocket"):
        port = container.port_number(probe.port if probe.port is not None else 80)
        if port is None:
            return ProbeResult(False, f"no container port named {probe.port!r}")
        if probe.kind == "httpGet":
            return await http_get(pod_ip, port, probe.path, probe.timeout)
        return await tcp_connect(pod_ip, port, probe.timeout)
    if exec_runnable(probe.command):
        return await run_exec([*exec_prefix, *probe.command], env, probe.timeout)
    fallback = exec_fallback(probe.command)
    port = container.ports[0].port if container.ports else None
    if fallback == "mysql":
        return await mysql_handshake(pod_ip, port or 3306, probe.timeout)
    if fallback == "redis":
        return await redis_ping(pod_ip, port or 6379, probe.timeout)
    return ProbeResult(False, f"exec probe {list(probe.command)}: a program is not installed")
