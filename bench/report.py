"""Write docs/benchmarks.md and its chart from one run's medians."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# The targets, as ratios to the bare endpoint of the same round.
TARGETS = {
    "backend GET /api/messages (Redis)": 0.5,
    "backend GET /api/messages (MySQL only)": 0.3,
    "frontend page / (frontend → backend → Redis)": 0.25,
}
SHARED_CLIENT_TARGET = 3.0
TAIL_TARGET = 3.0


class _Samples(Protocol):
    rps: list[float]
    ratio: list[float]
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
            p50=statistics.median(samples.p50),
            p99=statistics.median(samples.p99),
            errors=samples.errors,
            peak_rss=samples.peak_rss,
        )

    @property
    def tail_ratio(self) -> float:
        return self.p99 / self.p50 if self.p50 else 0.0


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


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
    shared_vs_per_request: float | None,
) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    chart = output.with_name("benchmarks.png")
    _chart(chart, rows)
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{command}` on {machine['date']}. Each figure is the median of "
        f"{rounds} round(s); in every round the bare endpoint and the target are run "
        f"back to back (`wrk -t1 -c{connections} -d{duration:g}s`), and the ratio is taken "
        "within the round, so machine noise shared by both cancels out.",
        "",
        "| target | req/s | ratio to bare | p50 ms | p99 ms | p99/p50 | errors | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.rps:,.0f} | {r.ratio:.2f} | {r.p50:.2f} | {r.p99:.2f} | "
            f"{r.tail_ratio:.1f} | {r.errors} | {r.peak_rss:.0f} |"
        )
    lines += ["", f"![ratios to the bare endpoint]({chart.name})", "", "## Targets", ""]
    lines += ["| target | wanted | measured | verdict |", "|---|---|---|---|"]
    by_name = {r.name: r for r in rows}
    for name, wanted in TARGETS.items():
        row = by_name.get(name)
        if row is None:
            lines.append(f"| {name} | ≥ {wanted} | not run | **missed** |")
            continue
        lines.append(f"| {name} | ≥ {wanted} | {row.ratio:.2f} | {_verdict(row.ratio >= wanted)} |")
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
    lines += [
        "",
        "## Memory and start-up",
        "",
        "| tier | idle RSS MiB | start to /readyz 200 s |",
        "|---|---:|---:|",
    ]
    for name in idle_rss:
        lines.append(f"| {name} | {idle_rss[name]:.0f} | {startup.get(name, float('nan')):.2f} |")
    lines += [
        "",
        "Under-load RSS is the peak sampled every 0.2 s during that target's runs (table above).",
        "",
        "## Machine",
        "",
    ]
    for key in ("cores", "cpu", "kernel", "python", "wrk", "packages"):
        lines.append(f"- {key}: {machine[key]}")
    lines += [
        "",
        "The load generator shares the cores with the servers: absolute numbers drift from run",
        "to run; compare ratios. Servers run as in production: `python -m backend` /",
        "`python -m frontend` (uvicorn with uvloop and httptools, one worker, JSON logs), and",
        "the bare app on the same runner (`bench/bare_app.py`).",
        "",
    ]
    output.write_text("\n".join(lines))
