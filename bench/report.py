"""Write docs/benchmarks.md and its chart from one run's medians."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bench import doc_section, scale
from bench.rule_report import SECTION as RULE_SCALING_SECTION

# The targets, as ratios to the bare endpoint of the same round.
TARGETS = {
    "backend GET /api/messages (Redis)": 0.5,
    "backend GET /api/messages (MySQL only)": 0.3,
    "frontend page / (frontend → backend → Redis)": 0.25,
}
# Issue 18: the project against a minimal app doing the same I/O, same round.
SAME_WORK_TARGETS = {
    "backend GET /api/messages (Redis)": 0.8,
    "backend GET /api/messages (MySQL only)": 1.5,
    "frontend page / (frontend → backend → Redis)": 0.7,
}
SHARED_CLIENT_TARGET = 3.0
TAIL_TARGET = 3.0


class _Samples(Protocol):
    rps: list[float]
    ratio: list[float]
    same_ratio: list[float]
    cpu_us: list[float]
    p50: list[float]
    p99: list[float]
    errors: int
    peak_rss: float


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    process: str
    rps: float
    ratio: float
    same_ratio: float | None
    cpu_us: float
    p50: float
    p99: float
    errors: int
    peak_rss: float

    @classmethod
    def from_samples(cls, name: str, samples: _Samples, process: str) -> Row:
        return cls(
            name=name,
            process=process,
            rps=statistics.median(samples.rps),
            ratio=statistics.median(samples.ratio),
            same_ratio=statistics.median(samples.same_ratio) if samples.same_ratio else None,
            cpu_us=statistics.median(samples.cpu_us),
            p50=statistics.median(samples.p50),
            p99=statistics.median(samples.p99),
            errors=samples.errors,
            peak_rss=samples.peak_rss,
        )

    @property
    def tail_ratio(self) -> float:
        return self.p99 / self.p50 if self.p50 else 0.0


@dataclass(frozen=True, slots=True)
class FeatureCost:
    """What one production feature costs a request, from switching it off."""

    feature: str
    cpu_us: float
    wall_us: float


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def load_charts() -> None:
    """Import the charting library ahead of `write_report`: `--check` does it on a
    thread while its round runs, which would otherwise wait on it after."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot


def _chart(path: Path, rows: list[Row]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.name for r in rows][::-1]
    ratios = [r.ratio for r in rows][::-1]
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(rows) + 1.2), dpi=110)
    bars = ax.barh(names, ratios, color="#3b6fb6")
    for bar, ratio in zip(bars, ratios, strict=True):
        ax.text(
            bar.get_width() + 0.01,
            bar.get_y() + bar.get_height() / 2,
            f"{ratio:.2f}",
            va="center",
            fontsize=9,
        )
    ax.axvline(1.0, color="#888", linewidth=0.8, linestyle="--")
    ax.set_xlabel("requests/s as a ratio to the bare FastAPI endpoint (same round)")
    ax.set_xlim(0, max(1.1, max(ratios) + 0.15))
    ax.tick_params(axis="y", labelsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _method(command: str, date: str, rounds: int, connections: int, duration: float) -> list[str]:
    return [
        f"Written by `{command}` on {date}. Each figure is the median of "
        f"{rounds} round(s); in every round the bare endpoint and the target are run "
        f"back to back (`wrk -t1 -c{connections} -d{duration:g}s`), and the ratio is taken "
        "within the round, so machine noise shared by both cancels out. Where a path has a "
        "*same-work app* (`bench/same_work.py`: the same I/O with the same libraries, server "
        "and settings, and none of the production features), it runs right after the target "
        "and the ratio to it is the project's overhead against the real limit. CPU µs/req is "
        "the server process's CPU time over the requests served (from /proc), which drifts "
        "less than req/s when other work shares the cores.",
        "",
    ]


def write_report(
    output: Path,
    *,
    rows: list[Row],
    idle_rss: dict[str, float],
    startup: dict[str, float],
    machine: dict[str, str],
    command: str,
    rounds: int,
    duration: float,
    connections: int,
    side_by_side: int = 0,
    feature_costs: Sequence[FeatureCost] = (),
    scale_points: Sequence[scale.Point] = (),
    shared_vs_per_request: float | None,
    tracing: Sequence[tuple[Row, Row]] = (),
) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    chart = output.with_name("benchmarks.png")
    _chart(chart, rows)
    lines = ["# Benchmarks", ""]
    if side_by_side:
        lines += _not_a_measurement(command, machine["date"], side_by_side, connections, duration)
    else:
        lines += _method(command, machine["date"], rounds, connections, duration)
    lines += _main_table(rows, chart.name)
    lines += _targets(rows, scale_points, shared_vs_per_request)
    lines += _feature_costs(feature_costs) + _tracing(tracing)
    if scale_points:
        scale_chart = output.with_name("benchmarks-scale.png")
        scale.chart(scale_chart, list(scale_points))
        lines += ["", *scale.render(list(scale_points), scale_chart.name)]
    lines += _memory(idle_rss, startup) + _machine(machine)
    text = "\n".join(lines)
    if output.exists():
        # `make bench-rules` owns a section of this page: keep its numbers.
        text = doc_section.carry(output.read_text(), text, RULE_SCALING_SECTION)
    output.write_text(text)


def _not_a_measurement(
    command: str, date: str, side_by_side: int, connections: int, duration: float
) -> list[str]:
    return [
        f"Written by `{command}` on {date}: a check that every section runs "
        "end to end, **not a measurement**. Every tier was started at once, nothing was "
        f"warmed up, and the one round ran up to {side_by_side} wrk runs side by side "
        f"(`wrk -t1 -c{connections} -d{duration:g}s`) against one bare run, with the "
        "growing-data section beside them: the figures below are not comparable with "
        "each other or with `make bench`.",
        "",
    ]


def _main_table(rows: list[Row], chart: str) -> list[str]:
    lines = [
        "The machine is shared with other jobs and has 2 cores for servers and load "
        "generator together: absolute numbers are noisy; compare ratios within this run.",
        "",
        "| target | req/s | ratio to bare | ratio to same-work | CPU µs/req | p50 ms | p99 ms "
        "| p99/p50 | errors | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        same = f"{r.same_ratio:.2f}" if r.same_ratio is not None else ""
        lines.append(
            f"| {r.name} | {r.rps:,.0f} | {r.ratio:.2f} | {same} | {r.cpu_us:.0f} | "
            f"{r.p50:.2f} | {r.p99:.2f} | {r.tail_ratio:.1f} | {r.errors} | {r.peak_rss:.0f} |"
        )
    return [*lines, "", f"![ratios to the bare endpoint]({chart})", ""]


def _targets(
    rows: list[Row], scale_points: Sequence[scale.Point], shared_vs_per_request: float | None
) -> list[str]:
    lines = ["## Targets", "", "| target | wanted | measured | verdict |", "|---|---|---|---|"]
    by_name = {r.name: r for r in rows}
    for name, wanted in TARGETS.items():
        row = by_name.get(name)
        if row is None:
            lines.append(f"| {name} | ≥ {wanted} | not run | **missed** |")
            continue
        lines.append(f"| {name} | ≥ {wanted} | {row.ratio:.2f} | {_verdict(row.ratio >= wanted)} |")
    for name, wanted in SAME_WORK_TARGETS.items():
        row = by_name.get(name)
        label = f"{name}, ratio to its same-work app"
        if row is None or row.same_ratio is None:
            lines.append(f"| {label} | ≥ {wanted} | not run | **missed** |")
            continue
        lines.append(
            f"| {label} | ≥ {wanted} | {row.same_ratio:.2f} | "
            f"{_verdict(row.same_ratio >= wanted)} |"
        )
    if len(scale_points) >= 2:
        growth = scale_points[-1].stats_ms / scale_points[0].stats_ms
        lines.append(
            f"| `/api/stats` at {scale_points[-1].rows:,} rows vs {scale_points[0].rows:,} "
            f"| ≤ 2x | {growth:.2f}x | {_verdict(growth <= 2)} |"
        )
    if shared_vs_per_request is not None:
        lines.append(
            f"| shared client vs client per request (frontend page) | ≥ {SHARED_CLIENT_TARGET}x | "
            f"{shared_vs_per_request:.1f}x | "
            f"{_verdict(shared_vs_per_request >= SHARED_CLIENT_TARGET)} |"
        )
    worst_tail = max(rows, key=lambda r: r.tail_ratio)
    lines.append(
        f"| p99 ≤ {TAIL_TARGET:g}x p50 (worst: {worst_tail.name}) | ≤ {TAIL_TARGET:g} | "
        f"{worst_tail.tail_ratio:.1f} | {_verdict(worst_tail.tail_ratio <= TAIL_TARGET)} |"
    )
    total_errors = sum(r.errors for r in rows)
    lines.append(f"| errors | 0 | {total_errors} | {_verdict(total_errors == 0)} |")
    return lines


def _feature_costs(feature_costs: Sequence[FeatureCost]) -> list[str]:
    if not feature_costs:
        return []
    lines = [
        "",
        "## What each production feature costs",
        "",
        "On the backend's cached list (`GET /api/messages` with Redis), each feature "
        "switched off in turn in its own backend process, run right after a reference "
        "backend with every feature on (started with them, so all have served the same "
        "requests) in every round; the cost is the difference per request (median over "
        "rounds). The first row is the reference's own time per request. "
        "The access log and the connection-age check are switched off by their "
        "production settings (`LOG_LEVEL=WARNING`, `MAX_CONNECTION_AGE_SECONDS=0`); "
        "metrics and the request id and headers by the bench-only factory "
        "`bench/variants.py`. Differences of a few µs are within this machine's noise.",
        "",
        "| feature switched off | CPU µs/request saved | wall µs/request saved (1/req/s) |",
        "|---|---:|---:|",
    ]
    reference, *switched = feature_costs
    lines.append(
        f"| {reference.feature} | ({reference.cpu_us:.0f} µs/request) "
        f"| ({reference.wall_us:.0f} µs/request) |"
    )
    for cost in switched:
        lines.append(f"| {cost.feature} | {cost.cpu_us:.1f} | {cost.wall_us:.1f} |")
    return lines


def _tracing(tracing: Sequence[tuple[Row, Row]]) -> list[str]:
    if not tracing:
        return []
    lines = [
        "",
        "## What tracing costs",
        "",
        "The same paths on a second backend (and frontend) with tracing on, every trace "
        "kept (`OTEL_TRACES_SAMPLER=always_on`), exporting over OTLP/HTTP to "
        "`bench/otlp_sink.py`, which answers 200 and keeps nothing; each run in the same "
        "rounds as the untraced one. Tracing off (no `OTEL_EXPORTER_OTLP_ENDPOINT`) is "
        "what every other row of this report runs. At this rate the batch processor's "
        "queue (2048 spans) can fill, and spans beyond it are dropped, not waited for.",
        "",
        "| path | off: ratio to bare | on: ratio to bare | on / off (req/s) "
        "| CPU µs/request off → on |",
        "|---|---:|---:|---:|---:|",
    ]
    for off, on in tracing:
        lines.append(
            f"| {off.name} | {off.ratio:.2f} | {on.ratio:.2f} | "
            f"{on.ratio / off.ratio if off.ratio else 0.0:.2f} | "
            f"{off.cpu_us:.0f} → {on.cpu_us:.0f} |"
        )
    return lines


def _memory(idle_rss: dict[str, float], startup: dict[str, float]) -> list[str]:
    lines = [
        "",
        "## Memory and start-up",
        "",
        "| tier | idle RSS MiB | start to /readyz 200 s |",
        "|---|---:|---:|",
    ]
    for name in idle_rss:
        lines.append(f"| {name} | {idle_rss[name]:.0f} | {startup.get(name, float('nan')):.2f} |")
    return [
        *lines,
        "",
        "Under-load RSS is the peak sampled every 0.2 s during that target's runs (table above).",
    ]


def _machine(machine: dict[str, str]) -> list[str]:
    lines = ["", "## Machine", ""]
    for key in ("cores", "cpu", "kernel", "python", "wrk", "packages"):
        lines.append(f"- {key}: {machine[key]}")
    return [
        *lines,
        "",
        "The load generator shares the cores with the servers: absolute numbers drift from run",
        "to run; compare ratios. Servers run as in production: `python -m backend` /",
        "`python -m frontend` (uvicorn with uvloop and httptools, one worker, JSON logs), and",
        "the bare app on the same runner (`bench/bare_app.py`).",
        "",
    ]
