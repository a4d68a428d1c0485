"""One round of wrk runs, and what each run adds to the tally.

`make bench` runs a round back to back: each target right after a bare run,
each switched-off feature right after a reference run, so that each pair
shares whatever else the machine is doing just then. `--check` runs its
round side by side instead: it checks that every section of the report runs
end to end, in seconds, and its figures are not a measurement.
"""

from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench.progress import progress
from bench.wrk import WrkResult, run_wrk
from localservers.apps import AppProcess

FEATURE_PATH = "/api/messages"

# What one wrk run returns: wrk's result, the server's peak RSS (MiB) and its
# CPU µs per request.
Run = tuple[WrkResult, float, float]


@dataclass
class Target:
    name: str
    process: str
    path: str
    script: Path | None = None
    note: str = ""
    # The minimal app doing the same I/O (bench/same_work.py), if there is one.
    same_work: str | None = None
    # Writes go last in a round: they invalidate the cache the reads use.
    writes: bool = False


@dataclass
class Samples:
    rps: list[float] = field(default_factory=list)
    ratio: list[float] = field(default_factory=list)
    same_ratio: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    errors: int = 0
    peak_rss: float = 0.0

    def add(self, run: Run, baseline_rps: float) -> None:
        result, peak, cpu_us = run
        self.rps.append(result.requests_per_s)
        self.cpu_us.append(cpu_us)
        self.ratio.append(result.requests_per_s / baseline_rps if baseline_rps else 0.0)
        self.p50.append(result.p50_ms)
        self.p99.append(result.p99_ms)
        self.errors += result.errors
        self.peak_rss = max(self.peak_rss, peak)


@dataclass
class Tally:
    """Every run's samples, over all rounds."""

    targets: list[Target]
    features: int
    bare: Samples = field(default_factory=Samples)
    results: dict[str, Samples] = field(default_factory=dict)
    same: dict[str, Samples] = field(default_factory=dict)
    # Per feature: (CPU µs/request saved, wall µs/request saved) per round;
    # for the reference, its own µs per request.
    saved: list[tuple[list[float], list[float]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.results = {t.name: Samples() for t in self.targets}
        self.same = {t.name: Samples() for t in self.targets if t.same_work}
        self.saved = [([], []) for _ in range(self.features)]

    def add_target(self, target: Target, run: Run, twin: Run | None, baseline_rps: float) -> None:
        self.results[target.name].add(run, baseline_rps)
        if twin is not None:
            self.same[target.name].add(twin, baseline_rps)
            rps, twin_rps = run[0].requests_per_s, twin[0].requests_per_s
            self.results[target.name].same_ratio.append(rps / twin_rps if twin_rps else 0.0)

    def add_feature(self, i: int, reference: Run, off: Run) -> None:
        """Feature `i` switched off against a reference run with every feature on."""
        full, _, full_cpu = reference
        self.saved[0][0].append(full_cpu)
        self.saved[0][1].append(_wall_us(full))
        self.saved[i][0].append(full_cpu - off[2])
        self.saved[i][1].append(_wall_us(full) - _wall_us(off[0]))


def _wall_us(result: WrkResult) -> float:
    """µs per request from req/s; NaN for a run that finished none (a cold server
    sharing the cores with --check's other runs may), not a ZeroDivisionError."""
    return 1e6 / result.requests_per_s if result.requests_per_s else math.nan


@dataclass
class Meter:
    apps: dict[str, AppProcess]
    duration: float
    connections: int

    def measure(self, name: str, path: str, script: Path | None = None) -> Run:
        app = self.apps[name]
        return run_wrk(
            app.url + path,
            self.duration,
            self.connections,
            script,
            watch_pid=app.proc.pid if app.proc else None,
        )


def paired_round(meter: Meter, tally: Tally, label: str) -> None:
    """`make bench`'s round: every run alone, each right after the one it is compared to."""
    for target in tally.targets:
        progress(f"round {label}: bare, then {target.name}")
        base = meter.measure("bare", "/")
        tally.bare.add(base, base[0].requests_per_s)
        run = meter.measure(target.process, target.path, target.script)
        twin = None
        if target.same_work:
            progress(f"round {label}: same-work app for {target.name}")
            twin = meter.measure(target.same_work, target.path)
        tally.add_target(target, run, twin, base[0].requests_per_s)
    if tally.features:
        progress(f"round {label}: feature costs")
        for i in range(1, tally.features):
            # A reference run right before each variant: the pair
            # shares whatever else the machine is doing just then.
            reference = meter.measure("feature-0", FEATURE_PATH)
            tally.add_feature(i, reference, meter.measure(f"feature-{i}", FEATURE_PATH))


def side_by_side_round(meter: Meter, tally: Tally, label: str, at_once: int) -> None:
    """`--check`'s round: one bare run, every read target, same-work app and feature
    backend (one reference for all variants), `at_once` runs at a time; then the writes."""
    reads = [t for t in tally.targets if not t.writes]
    progress(f"round {label}: one bare run and every read run, {at_once} at a time")
    with ThreadPoolExecutor(at_once) as pool:
        bare = pool.submit(meter.measure, "bare", "/")
        runs = {t.name: pool.submit(meter.measure, t.process, t.path, t.script) for t in reads}
        twins: dict[str, Future[Run]] = {
            t.name: pool.submit(meter.measure, t.same_work, t.path) for t in reads if t.same_work
        }
        variants = [
            pool.submit(meter.measure, f"feature-{i}", FEATURE_PATH) for i in range(tally.features)
        ]
    base = bare.result()
    baseline_rps = base[0].requests_per_s
    tally.bare.add(base, baseline_rps)
    for target in reads:
        twin = twins[target.name].result() if target.name in twins else None
        tally.add_target(target, runs[target.name].result(), twin, baseline_rps)
    for i in range(1, tally.features):
        tally.add_feature(i, variants[0].result(), variants[i].result())
    for target in tally.targets:
        if target.writes:
            progress(f"round {label}: {target.name}")
            tally.add_target(
                target,
                meter.measure(target.process, target.path, target.script),
                None,
                baseline_rps,
            )
