"""The spread view: which backend pods answer N requests, and why it depends on connections.

The node's kernel, following the rules kube-proxy wrote, chooses a backend
pod when a TCP connection to a ClusterIP is opened, never per request. N
requests each on a new connection scatter over the pods; the same N on one
kept-alive connection all land on the pod chosen when it opened.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from frontend.backend_client import BackendClient, BackendUnavailable
from frontend.pods import PodDirectory

# Enough in flight to finish 200 connections quickly, few enough that the
# demo never looks like a load test to the backend.
_FRESH_CONCURRENCY = 8
_PROBE_PATH = "/api/info"

HEADLINE = "A ClusterIP spreads connections, not requests."
DETAIL = (
    "kube-proxy only writes the rules; the node's kernel, following them, picks a backend"
    " pod when a TCP connection to the ClusterIP is opened, and every request on that"
    " connection goes to the same pod. Requests each on a new connection"
    " spread over the pods; the same requests on one kept-alive connection all reach one"
    " pod. That is why the backend closes a kept-alive connection once it is older than"
    " `MAX_CONNECTION_AGE_SECONDS` (30 s by default): busy clients reconnect, and the"
    " kernel picks again."
)
EXPLANATION = f"{HEADLINE} {DETAIL}"

Mode = Literal["fresh", "kept-alive"]


@dataclass(slots=True)
class SpreadRun:
    mode: Mode
    requests: int
    pods: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    connections: int = 0
    duration_ms: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def answered(self) -> int:
        return self.requests - self.failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "answered": self.answered,
            "failed": self.failed,
            "connections_opened": self.connections,
            "duration_ms": round(self.duration_ms, 2),
            "pods": self.pods,
            "errors": self.errors,
        }


@dataclass(slots=True)
class Spread:
    n: int
    fresh: SpreadRun
    kept_alive: SpreadRun

    @property
    def reached_nothing(self) -> bool:
        return self.fresh.answered == 0 and self.kept_alive.answered == 0

    def as_dict(self, backend_url: str) -> dict[str, Any]:
        return {
            "n": self.n,
            "backend_url": backend_url,
            "probe": f"GET {_PROBE_PATH}",
            "fresh_connections": self.fresh.as_dict(),
            "one_kept_alive_connection": self.kept_alive.as_dict(),
            "explanation": EXPLANATION,
        }


class _Tally:
    def __init__(self, run: SpreadRun, pods: PodDirectory) -> None:
        self.run = run
        self.directory = pods
        self.counts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def add(self, outcome: Any) -> None:
        reply, attempt, _error = outcome
        if attempt.new_connection and attempt.stage != "connect":
            self.run.connections += 1
        if reply is None or reply.status != 200:
            self.run.failed += 1
            self.errors[attempt.error or f"answered {reply.status if reply else '?'}"] += 1
            return
        pod = reply.served_by or "unknown"
        self.counts[pod] += 1
        try:
            info = reply.json()
        except BackendUnavailable:  # a body that is not JSON still names its pod
            info = None
        if isinstance(info, dict):
            self.directory.learn(info)

    def finish(self, started: float) -> SpreadRun:
        self.run.duration_ms = (time.perf_counter() - started) * 1000
        self.run.pods = dict(sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])))
        self.run.errors = [f"{count}x {text}" for text, count in self.errors.most_common(3)]
        return self.run


async def _fresh_run(backend: BackendClient, pods: PodDirectory, n: int) -> SpreadRun:
    tally = _Tally(SpreadRun("fresh", n), pods)
    gate = asyncio.Semaphore(_FRESH_CONCURRENCY)

    async def one() -> None:
        async with gate:
            tally.add(await backend.send_once(backend.fresh, "GET", _PROBE_PATH))

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return tally.finish(started)


async def _kept_alive_run(backend: BackendClient, pods: PodDirectory, n: int) -> SpreadRun:
    tally = _Tally(SpreadRun("kept-alive", n), pods)
    started = time.perf_counter()
    client: httpx.AsyncClient
    async with backend.dedicated() as client:
        for _ in range(n):
            tally.add(await backend.send_once(client, "GET", _PROBE_PATH))
    return tally.finish(started)


async def run_spread(backend: BackendClient, pods: PodDirectory, n: int) -> Spread:
    # One after the other, so neither run's connections crowd the other's.
    fresh = await _fresh_run(backend, pods, n)
    kept_alive = await _kept_alive_run(backend, pods, n)
    return Spread(n=n, fresh=fresh, kept_alive=kept_alive)


def parse_n(raw: str | None, default: int, maximum: int) -> int:
    """`n` from the query string: blank means the default; else 1..maximum."""
    if raw is None or not raw.strip():
        return default
    message = f"n must be a whole number from 1 to {maximum}"
    try:
        n = int(raw.strip())
    except ValueError:
        raise SpreadInputError(message) from None
    if not 1 <= n <= maximum:
        raise SpreadInputError(message)
    return n


class SpreadInputError(ValueError):
    pass
