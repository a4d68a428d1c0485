"""Drive the benchmark: start every tier, alternate bare and target runs, write the report.

`--quick` is one round of 2 s runs. `--check` is the same report's smoke path (the
tests run it): every tier started at once, no
warm-up, one round side by side (bench/rounds.py) and the growing-data
section beside it, so that every section runs end to end in seconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.processes import start_at_once, start_in_turn, stop_all
from bench.progress import progress
from bench.report import FeatureCost, Row, load_charts, write_report
from bench.rounds import FEATURE_PATH, Meter, Tally, Target, paired_round, side_by_side_round
from bench.scale import (
    QUICK_SAMPLES,
    QUICK_SIZES,
    QUICK_WRITE_SAMPLES,
    SIZES,
    Point,
    ScaleBackend,
    measure_sizes,
    run_scale,
    scale_backend,
)
from bench.wrk import rss_mib, run_wrk
from localservers.apps import AppProcess, migrate
from localservers.servers import MariaDB, Redis, mariadb_binaries, redis_binary

REPO = Path(__file__).resolve().parent.parent
POST_SCRIPT = Path(__file__).resolve().parent / "post.lua"


# The production features priced on the backend's cached list, each switched
# off in turn: a real production setting where there is one, else the
# bench-only factory in bench/variants.py. The first is the reference: a
# full backend started with the others, so that all have served the same
# requests (the main backend has also served every other target by then).
FEATURES: list[tuple[str, str, dict[str, str]]] = [
    ("nothing (reference: every feature on)", "backend", {}),
    ("JSON access log", "backend", {"LOG_LEVEL": "WARNING"}),
    ("connection-age check", "backend", {"MAX_CONNECTION_AGE_SECONDS": "0"}),
    ("Prometheus metrics", "bench.variants", {"BENCH_VARIANT": "no-metrics"}),
    (
        "request id, X-Served-By, Server-Timing",
        "bench.variants",
        {"BENCH_VARIANT": "no-request-id"},
    ),
    (
        "all four",
        "bench.variants",
        {
            "LOG_LEVEL": "WARNING",
            "MAX_CONNECTION_AGE_SECONDS": "0",
            "BENCH_VARIANT": "no-metrics,no-request-id",
        },
    ),
]
# Tracing on, every trace kept, exporting to bench/otlp_sink.py: the targets
# these name are run again on a traced backend (and frontend) beside the
# untraced ones, and the report gives on/off as a ratio.
TRACED = {
    "backend GET /api/messages (Redis)": "backend-traced",
    "frontend page / (frontend → backend → Redis)": "frontend-traced",
}
TRACED_SUFFIX = ", tracing on (100 % sampled)"
SAME_ENV = {"SHUTDOWN_DELAY_SECONDS": "0", "LOG_LEVEL": "WARNING"}
# --check's wrk runs at a time: enough that its round takes a few seconds, few
# enough that each server still gets a share of the two cores.
CHECK_AT_ONCE = 9
# --check's connections per wrk run. Its servers are cold and share the cores
# with the other runs: at 32, a frontend making a client per request spends
# its second building 32 clients and answers none within a 1 s run.
CHECK_CONNECTIONS = 4


def traced_env(sink: AppProcess) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url,
        "OTEL_TRACES_SAMPLER": "always_on",
    }


def seed(url: str, count: int) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        for i in range(count):
            response = client.post(
                "/api/messages", json={"author": "seed", "text": f"seeded message {i}"}
            )
            response.raise_for_status()


def machine_description() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    versions = {}
    for package in ("fastapi", "uvicorn", "starlette", "httpx", "sqlalchemy", "redis", "pydantic"):
        try:
            from importlib.metadata import version

            versions[package] = version(package)
        except Exception:
            versions[package] = "?"
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "wrk": wrk_version.split("\n", 1)[0].strip(),
        "packages": ", ".join(f"{k} {v}" for k, v in versions.items()),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s runs")
    parser.add_argument(
        "--check",
        action="store_true",
        help="a check that every section runs, in seconds: one round of 1 s runs side by "
        "side, no warm-up, every tier started at once; its figures are not a measurement",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--no-frontend", action="store_true", help="backend targets only")
    parser.add_argument("--no-features", action="store_true", help="skip the feature costs")
    parser.add_argument("--no-scale", action="store_true", help="skip the growing-data section")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration = 1, min(args.duration, 2.0)
    if args.check:
        args.rounds, args.duration = 1, min(args.duration, 1.0)
        args.connections = min(args.connections, CHECK_CONNECTIONS)
    return args


def backend_apps(
    workdir: Path,
    backend_env: dict[str, str],
    redis: Redis,
    features: list[tuple[str, str, dict[str, str]]],
) -> dict[str, AppProcess]:
    """The bare app, the backends, their same-work apps, the feature variants and the
    traced backend with its collector stand-in."""
    database_url = backend_env["DATABASE_URL"]
    apps: dict[str, AppProcess] = {}
    apps["bare"] = AppProcess(
        "bench.bare_app", {"SHUTDOWN_DELAY_SECONDS": "0"}, workdir / "bare.log"
    )
    apps["bare"].env["PORT"] = str(apps["bare"].port)
    apps["backend"] = AppProcess("backend", backend_env, workdir / "backend.log")
    apps["backend-mysql"] = AppProcess(
        "backend",
        backend_env | {"REDIS_URL": "", "POD_NAME": "backend-mysql-only"},
        workdir / "backend-mysql.log",
    )
    apps["same-cached"] = AppProcess(
        "bench.same_work",
        SAME_ENV | {"SAME_WORK": "cached", "REDIS_URL": redis.url()},
        workdir / "same-cached.log",
    )
    apps["same-db"] = AppProcess(
        "bench.same_work",
        SAME_ENV | {"SAME_WORK": "db", "DATABASE_URL": database_url + "?charset=utf8mb4"},
        workdir / "same-db.log",
    )
    for i, (_label, module, env) in enumerate(features):
        apps[f"feature-{i}"] = AppProcess(
            module,
            backend_env | env | {"POD_NAME": f"backend-feature-{i}"},
            workdir / f"feature-{i}.log",
        )
    apps["otlp-sink"] = AppProcess("bench.otlp_sink", {}, workdir / "otlp-sink.log")
    apps["otlp-sink"].env["PORT"] = str(apps["otlp-sink"].port)
    apps["backend-traced"] = AppProcess(
        "backend",
        backend_env | traced_env(apps["otlp-sink"]) | {"POD_NAME": "backend-traced"},
        workdir / "backend-traced.log",
    )
    return apps


def frontend_apps(workdir: Path, backends: dict[str, AppProcess]) -> dict[str, AppProcess]:
    """The frontend, its client-per-request foil, its same-work app and the traced one."""
    backend_url = backends["backend"].url
    frontend_env = {"BACKEND_URL": backend_url, "SHUTDOWN_DELAY_SECONDS": "0"}
    return {
        "frontend": AppProcess("frontend", frontend_env, workdir / "frontend.log"),
        "frontend-per-request": AppProcess(
            "bench.per_request", frontend_env, workdir / "frontend-per-request.log"
        ),
        "same-page": AppProcess(
            "bench.same_work",
            SAME_ENV | {"SAME_WORK": "page", "BACKEND_URL": backend_url},
            workdir / "same-page.log",
        ),
        "frontend-traced": AppProcess(
            "frontend",
            frontend_env
            | traced_env(backends["otlp-sink"])
            | {"BACKEND_URL": backends["backend-traced"].url, "POD_NAME": "frontend-traced"},
            workdir / "frontend-traced.log",
        ),
    }


def targets_for(has_frontend: bool) -> list[Target]:
    targets = [
        Target(
            "backend GET /api/messages (Redis)",
            "backend",
            "/api/messages",
            same_work="same-cached",
        ),
        Target(
            "backend GET /api/messages (MySQL only)",
            "backend-mysql",
            "/api/messages",
            same_work="same-db",
        ),
    ]
    if has_frontend:
        targets += [
            Target(
                "frontend page / (frontend → backend → Redis)",
                "frontend",
                "/",
                same_work="same-page",
            ),
            Target("frontend GET /api/route", "frontend", "/api/route"),
            Target(
                "frontend page /, new client per request",
                "frontend-per-request",
                "/",
                note="shared-client comparison only",
            ),
        ]
    by_name = {t.name: t for t in targets}
    targets += [
        Target(name + TRACED_SUFFIX, process, by_name[name].path)
        for name, process in TRACED.items()
        if name in by_name
    ]
    # Writes last in a round: they invalidate the cache the reads use.
    targets.append(
        Target("backend POST /api/messages", "backend", "/api/messages", POST_SCRIPT, writes=True)
    )
    return targets


def warm_up(meter: Meter, tally: Tally) -> None:
    progress("warming up")
    apps, connections = meter.apps, meter.connections
    for target in tally.targets:
        run_wrk(apps[target.process].url + target.path, 1, connections, target.script)
        if target.same_work:
            run_wrk(apps[target.same_work].url + target.path, 1, connections)
    for i in range(tally.features):
        run_wrk(apps[f"feature-{i}"].url + FEATURE_PATH, 1, connections)


def rows_of(tally: Tally) -> list[Row]:
    rows = [Row.from_samples('bare FastAPI `{"ok": true}` (baseline)', tally.bare, "bare")]
    for target in tally.targets:
        rows.append(Row.from_samples(target.name, tally.results[target.name], target.process))
        if target.same_work:
            rows.append(
                Row.from_samples(
                    f"same-work app for: {target.name}",
                    tally.same[target.name],
                    target.same_work,
                )
            )
    return rows


@dataclass
class Session:
    """What one bench run owns, all stopped by `close`."""

    workdir: Path
    mariadb: MariaDB
    redis: Redis
    # The processes in the report's tables, in its order.
    apps: dict[str, AppProcess] = field(default_factory=dict)
    # --check's scale backend, started with the others.
    others: dict[str, AppProcess] = field(default_factory=dict)
    # --check prepares and measures the growing data here, beside the rest.
    beside: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1))

    def close(self) -> None:
        stop_all(self.apps | self.others)
        self.beside.shutdown(wait=True)
        self.redis.stop()
        self.mariadb.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_servers(session: Session) -> dict[str, str]:
    """MariaDB and Redis, and the environment every backend shares."""
    progress("starting MariaDB and Redis")
    session.mariadb.install()
    session.mariadb.start()
    session.redis.start()
    return {
        "DATABASE_URL": session.mariadb.url(session.mariadb.create_database("bench")),
        "REDIS_URL": session.redis.url(),
        "RATE_LIMIT_WRITES": "100000000",
        "SHUTDOWN_DELAY_SECONDS": "0",
        "POD_NAME": "backend-bench",
    }


def start_check(
    session: Session, scaled: Future[ScaleBackend] | None
) -> tuple[dict[str, float], Future[list[Point]] | None]:
    """Every process at once, the scale backend with them; then the growing-data
    section beside the round: its runs take a second each, however many cores
    they get, where the start-ups want every core."""
    if scaled is not None:
        session.others["backend-scale"] = scaled.result().app
    startup = start_at_once(session.apps | session.others)
    scale_run = None
    if scaled is not None:
        scale_run = session.beside.submit(
            measure_sizes,
            scaled.result(),
            QUICK_SIZES,
            progress,
            QUICK_SAMPLES,
            QUICK_WRITE_SAMPLES,
        )
    session.beside.submit(load_charts)
    return startup, scale_run


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [
        name
        for name, ok in (
            ("wrk", shutil.which("wrk")),
            ("mariadbd", mariadb_binaries()),
            ("redis-server", redis_binary()),
        )
        if not ok
    ]
    if missing:
        print(f"bench needs {', '.join(missing)} (apt-get install wrk mariadb-server redis-server)")
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="cip-bench-"))
    session = Session(workdir, MariaDB(workdir / "mariadb"), Redis(workdir / "redis"))
    try:
        return run(args, session)
    finally:
        session.close()


def run(args: argparse.Namespace, session: Session) -> int:
    backend_env = start_servers(session)
    scaled = None
    if args.check and not args.no_scale:
        # Its database and migration beside the bench's own.
        scaled = session.beside.submit(scale_backend, session.mariadb, session.workdir)
    migrate(backend_env)
    features = [] if args.no_features else FEATURES
    apps = session.apps
    apps.update(backend_apps(session.workdir, backend_env, session.redis, features))
    frontends = {} if args.no_frontend else frontend_apps(session.workdir, apps)
    scale_run = None
    if args.check:
        apps.update(frontends)
        startup, scale_run = start_check(session, scaled)
    else:
        startup = start_in_turn(apps)
        apps.update(frontends)
        startup |= start_in_turn(frontends)
    progress("seeding 20 messages")
    seed(apps["backend"].url, 20)

    tally = Tally(targets_for(bool(frontends)), len(features))
    meter = Meter(apps, args.duration, args.connections)
    idle_rss = {
        name: rss_mib(app.proc.pid)
        for name, app in apps.items()
        if app.proc and name != "otlp-sink"
    }
    if not args.check:
        warm_up(meter, tally)
    for round_no in range(1, args.rounds + 1):
        label = f"{round_no}/{args.rounds}"
        if args.check:
            side_by_side_round(meter, tally, label, CHECK_AT_ONCE)
        else:
            paired_round(meter, tally, label)

    rows = rows_of(tally)
    feature_costs = [
        FeatureCost(label, statistics.median(cpu), statistics.median(wall))
        for (label, _, _), (cpu, wall) in zip(features, tally.saved, strict=True)
    ]
    scale_points: list[Point] = []
    if scale_run is not None:
        scale_points = scale_run.result()
    elif not args.no_scale and not args.check:
        sizes = QUICK_SIZES if args.quick else SIZES
        scale_points = run_scale(session.mariadb, session.workdir, sizes, progress)
    shared = next((r for r in rows if r.name.startswith("frontend page / (")), None)
    per_request = next((r for r in rows if "new client" in r.name), None)
    write_report(
        args.output,
        rows=rows,
        idle_rss=idle_rss,
        startup=startup,
        machine=machine_description(),
        command=" ".join(
            ["make bench"] + (["(--check)"] if args.check else ["(--quick)"] if args.quick else [])
        ),
        rounds=args.rounds,
        duration=args.duration,
        connections=args.connections,
        side_by_side=CHECK_AT_ONCE if args.check else 0,
        feature_costs=feature_costs,
        scale_points=scale_points,
        tracing=[
            (off, on)
            for off in rows
            for on in rows
            if off.name in TRACED and on.name == off.name + TRACED_SUFFIX
        ],
        shared_vs_per_request=(
            shared.rps / per_request.rps if shared and per_request and per_request.rps else None
        ),
    )
    progress(f"wrote {args.output}")
    return 0
