"""The spread view: which backend pods answer N requests, and why it depends on connections.

The node's kernel, following the rules kube-proxy wrote, chooses a backend
pod when a TCP connection to a ClusterIP is opened, never per request. N
requests each on a new connection scatter over the pods; the same N on one
kept-alive connection all land on the pod chosen when it opened.

A spread costs 2N backend requests and N new connections, for anyone who
asks: so it is bounded (issue 26). Both runs share one deadline
(`SPREAD_DEADLINE_SECONDS`); the first request that times out ends the
spread (a backend that stalls one probe would stall the rest); requests not
sent are counted as failed with the reason. The route also cancels it when
the client goes away, and a pod runs at most `SPREAD_CONCURRENCY` at once
(frontend/spread_limits.py).
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


NOT_SENT_TIMEOUT = "not sent: an earlier request timed out"
NOT_SENT_DEADLINE = "not sent: the spread's deadline passed"


class _Tally:
    def __init__(self, run: SpreadRun, pods: PodDirectory) -> None:
        self.run = run
        self.directory = pods
        self.counts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.done = 0
        # Set by the first request that timed out: no more are sent.
        self.timed_out = False

    def add(self, outcome: Any) -> None:
        reply, attempt, error = outcome
        self.done += 1
        if isinstance(error, httpx.TimeoutException):
            self.timed_out = True
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

    def finish(self, started: float, unsent_reason: str = NOT_SENT_TIMEOUT) -> SpreadRun:
        unsent = self.run.requests - self.done
        if unsent > 0:
            self.run.failed += unsent
            self.errors[unsent_reason] += unsent
        self.run.duration_ms = (time.perf_counter() - started) * 1000
        self.run.pods = dict(sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])))
        self.run.errors = [f"{count}x {text}" for text, count in self.errors.most_common(3)]
        return self.run


async def _fresh_run(backend: BackendClient, tally: _Tally, n: int, timeouts: _Budget) -> None:
    gate = asyncio.Semaphore(_FRESH_CONCURRENCY)

    async def one() -> None:
        async with gate:
            if tally.timed_out:
                return  # counted as not sent
            tally.add(
                await backend.send_once(backend.fresh, "GET", _PROBE_PATH, timeouts=timeouts())
            )

    await asyncio.gather(*(one() for _ in range(n)))


async def _kept_alive_run(backend: BackendClient, tally: _Tally, n: int, timeouts: _Budget) -> None:
    client: httpx.AsyncClient
    async with backend.dedicated() as client:
        for _ in range(n):
            tally.add(await backend.send_once(client, "GET", _PROBE_PATH, timeouts=timeouts()))
            if tally.timed_out:
                return


class _Budget:
    """Each request's timeouts, cut to what is left of the spread's deadline."""

    def __init__(self, backend: BackendClient, deadline_s: float) -> None:
        self._timeout = backend.timeout
        self._ends = time.monotonic() + deadline_s

    def __call__(self) -> httpx.Timeout:
        left = max(0.001, self._ends - time.monotonic())
        base = self._timeout
        return httpx.Timeout(
            connect=min(base.connect or left, left),
            read=min(base.read or left, left),
            write=min(base.write or left, left),
            pool=min(base.pool or left, left),
        )


async def run_spread(
    backend: BackendClient, pods: PodDirectory, n: int, deadline_s: float = 30.0
) -> Spread:
    """Both runs within `deadline_s`; what was not done by then counts as failed."""
    fresh = _Tally(SpreadRun("fresh", n), pods)
    kept = _Tally(SpreadRun("kept-alive", n), pods)
    budget = _Budget(backend, deadline_s)
    started = kept_started = time.perf_counter()
    reason = NOT_SENT_TIMEOUT
    try:
        async with asyncio.timeout(deadline_s):
            # One after the other, so neither run's connections crowd the other's.
            await _fresh_run(backend, fresh, n, budget)
            kept_started = time.perf_counter()
            if not fresh.timed_out:
                await _kept_alive_run(backend, kept, n, budget)
    except TimeoutError:
        reason = NOT_SENT_DEADLINE
    fresh_run = fresh.finish(started, reason)
    return Spread(n=n, fresh=fresh_run, kept_alive=kept.finish(kept_started, reason))


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
