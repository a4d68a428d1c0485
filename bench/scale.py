"""Costs as the data grows: fill MariaDB to 10^3, 10^5 and 10^6 messages with a
server-side INSERT … SELECT and time list, deep page, stats and write at each size.

`make bench-scale` runs it alone; `make bench` runs it as its last section.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from localservers.apps import AppProcess, migrate
from localservers.servers import MariaDB

SIZES = (1_000, 100_000, 1_000_000)
QUICK_SIZES = (1_000, 10_000)
# One transaction per chunk keeps the undo log of a fill step bounded.
FILL_CHUNK = 250_000
FILL_POD = "scale-fill"
SAMPLES = 40
WRITE_SAMPLES = 20
# `bench --check` checks that the section runs: a few requests will do.
QUICK_SAMPLES = 5
QUICK_WRITE_SAMPLES = 3


@dataclass(frozen=True, slots=True)
class Point:
    rows: int
    fill_s: float
    list_ms: float
    deep_ms: float
    stats_ms: float
    write_ms: float
    full_count_ms: float
    # Each latency is the median of this many requests (writes: write_samples).
    samples: int = SAMPLES
    write_samples: int = WRITE_SAMPLES


def fill(mariadb: MariaDB, database: str, count: int) -> float:
    """Add `count` messages on the server (MariaDB's sequence engine makes the rows),
    with the per-pod counter in the same transaction, as the backend keeps it."""
    started = time.monotonic()
    left = count
    while left > 0:
        n = min(FILL_CHUNK, left)
        mariadb.sql(
            "START TRANSACTION;"
            "INSERT INTO messages (author, text, created_at, written_by) "
            f"SELECT 'scale', CONCAT('scale message ', seq), NOW(6), '{FILL_POD}' "
            f"FROM seq_1_to_{n};"
            "INSERT INTO message_counts (written_by, messages) "
            f"VALUES ('{FILL_POD}', {n}) ON DUPLICATE KEY UPDATE messages = messages + {n};"
            "COMMIT;",
            database,
            timeout=600,
        )
        left -= n
    return time.monotonic() - started


def _median_ms(call: Callable[[], object], samples: int) -> float:
    for _ in range(3):
        call()
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _ok(response: httpx.Response) -> httpx.Response:
    response.raise_for_status()
    return response


def measure(
    client: httpx.Client,
    database_url: str,
    rows: int,
    fill_s: float,
    samples: int = SAMPLES,
    write_samples: int = WRITE_SAMPLES,
) -> Point:
    middle = max(1, rows // 2)
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:

            def old_stats() -> None:
                # What GET /api/stats ran before the counters: a full count.
                conn.execute(text("SELECT COUNT(*) FROM messages")).scalar_one()
                conn.execute(
                    text("SELECT written_by, COUNT(*) FROM messages GROUP BY written_by")
                ).all()

            full_count = _median_ms(old_stats, 3)
    finally:
        engine.dispose()
    return Point(
        rows=rows,
        fill_s=fill_s,
        list_ms=_median_ms(lambda: _ok(client.get("/api/messages")), samples),
        deep_ms=_median_ms(
            lambda: _ok(client.get("/api/messages", params={"before_id": middle})), samples
        ),
        stats_ms=_median_ms(lambda: _ok(client.get("/api/stats")), samples),
        write_ms=_median_ms(
            lambda: _ok(client.post("/api/messages", json={"author": "b", "text": "scale"})),
            write_samples,
        ),
        full_count_ms=full_count,
        samples=samples,
        write_samples=write_samples,
    )


@dataclass(frozen=True, slots=True)
class ScaleBackend:
    """One backend on a fresh database of its own, on MariaDB alone (no Redis: every
    list is a SELECT); not started yet."""

    mariadb: MariaDB
    database: str
    app: AppProcess


def scale_backend(mariadb: MariaDB, workdir: Path) -> ScaleBackend:
    database = mariadb.create_database("scale")
    env = {
        "DATABASE_URL": mariadb.url(database),
        "SHUTDOWN_DELAY_SECONDS": "0",
        "POD_NAME": "backend-scale",
        "LOG_LEVEL": "WARNING",
    }
    migrate(env)
    return ScaleBackend(
        mariadb, database, AppProcess("backend", env, workdir / "backend-scale.log")
    )


def measure_sizes(
    scaled: ScaleBackend,
    sizes: tuple[int, ...],
    progress: Callable[[str], None],
    samples: int = SAMPLES,
    write_samples: int = WRITE_SAMPLES,
) -> list[Point]:
    """Fill the started backend's table to each size in turn and measure there."""
    points: list[Point] = []
    have = 0
    database_url = scaled.app.env["DATABASE_URL"]
    with httpx.Client(base_url=scaled.app.url, timeout=60) as client:
        for size in sizes:
            progress(f"scale: filling to {size:,} messages")
            took = fill(scaled.mariadb, scaled.database, size - have)
            have = size
            progress(f"scale: measuring at {size:,} messages")
            point = measure(client, database_url, size, took, samples, write_samples)
            # The writes just timed added rows; later sizes fill up to the mark.
            have += write_samples + 3
            points.append(point)
    return points


def run_scale(
    mariadb: MariaDB, workdir: Path, sizes: tuple[int, ...], progress: Callable[[str], None]
) -> list[Point]:
    """Start a scale backend, measure it at each size, stop it."""
    scaled = scale_backend(mariadb, workdir)
    scaled.app.start(ready_timeout=60)
    try:
        return measure_sizes(scaled, sizes, progress)
    finally:
        scaled.app.stop()


def chart(path: Path, points: list[Point]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [p.rows for p in points]
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    for label, values, style in (
        ("GET /api/messages (first page)", [p.list_ms for p in points], "o-"),
        ("GET /api/messages?before_id= (deep page)", [p.deep_ms for p in points], "s-"),
        ("GET /api/stats (counters)", [p.stats_ms for p in points], "^-"),
        ("POST /api/messages", [p.write_ms for p in points], "d-"),
        ("full COUNT(*) + GROUP BY (stats before)", [p.full_count_ms for p in points], "x--"),
    ):
        ax.plot(rows, values, style, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("messages in the table")
    ax.set_ylabel("median latency, ms (one client, sequential)")
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def render(points: list[Point], chart_name: str) -> list[str]:
    samples, write_samples = points[0].samples, points[0].write_samples
    lines = [
        "## As the data grows",
        "",
        "One backend on MariaDB alone (no Redis, so every list is a SELECT), one client "
        f"sending requests one after another; medians of {samples} requests "
        f"({write_samples} for writes). The table is filled between sizes by a server-side "
        "`INSERT … SELECT` from MariaDB's sequence engine. The last column is what "
        "`/api/stats` ran before it read counters: a full `COUNT(*)` and `GROUP BY`.",
        "",
        "| messages | list ms | deep page ms | stats ms | write ms | full count ms | fill s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        lines.append(
            f"| {p.rows:,} | {p.list_ms:.2f} | {p.deep_ms:.2f} | {p.stats_ms:.2f} | "
            f"{p.write_ms:.2f} | {p.full_count_ms:.1f} | {p.fill_s:.1f} |"
        )
    if len(points) >= 2:
        first, last = points[0], points[-1]
        growth = last.stats_ms / first.stats_ms if first.stats_ms else float("inf")
        verdict = "met" if growth <= 2 else "**missed**"
        lines += [
            "",
            f"`/api/stats` at {last.rows:,} messages takes {growth:.2f}x its time at "
            f"{first.rows:,} (wanted ≤ 2x): {verdict}.",
        ]
    lines += ["", f"![latency as the table grows]({chart_name})", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10^3 and 10^4 rows only")
    parser.add_argument("--output", type=Path, default=Path("var/bench/scale.md"))
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="cip-scale-"))
    mariadb = MariaDB(workdir / "mariadb")

    def progress(message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)

    try:
        mariadb.install()
        mariadb.start()
        points = run_scale(mariadb, workdir, QUICK_SIZES if args.quick else SIZES, progress)
    finally:
        mariadb.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    chart_path = args.output.with_suffix(".png")
    chart(chart_path, points)
    args.output.write_text("\n".join(["# Benchmarks: scale", "", *render(points, chart_path.name)]))
    progress(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
