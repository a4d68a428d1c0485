"""Drive the benchmark: start every tier, alternate bare and target runs, write the report."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.report import FeatureCost, Row, write_report
from bench.scale import QUICK_SIZES, SIZES, run_scale
from bench.wrk import WrkResult, rss_mib, run_wrk
from localservers.apps import AppProcess, migrate
from localservers.servers import MariaDB, Redis, mariadb_binaries, redis_binary

REPO = Path(__file__).resolve().parent.parent
POST_SCRIPT = Path(__file__).resolve().parent / "post.lua"


@dataclass
class Target:
    name: str
    process: str
    path: str
    script: Path | None = None
    note: str = ""
    # The minimal app doing the same I/O (bench/same_work.py), if there is one.
    same_work: str | None = None


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
FEATURE_PATH = "/api/messages"
# Tracing on, every trace kept, exporting to bench/otlp_sink.py: the targets
# these name are run again on a traced backend (and frontend) beside the
# untraced ones, and the report gives on/off as a ratio.
TRACED = {
    "backend GET /api/messages (Redis)": "backend-traced",
    "frontend page / (frontend → backend → Redis)": "frontend-traced",
}
TRACED_SUFFIX = ", tracing on (100 % sampled)"


def traced_env(sink: AppProcess) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url,
        "OTEL_TRACES_SAMPLER": "always_on",
    }


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def start(app: AppProcess) -> float:
    """Start a tier and return the seconds from process start to /readyz 200."""
    started = time.monotonic()
    app.start(ready_timeout=60)
    return time.monotonic() - started


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s runs")
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
    mariadb = MariaDB(workdir / "mariadb")
    redis = Redis(workdir / "redis")
    apps: dict[str, AppProcess] = {}
    startup: dict[str, float] = {}
    try:
        progress("starting MariaDB and Redis")
        mariadb.install()
        mariadb.start()
        redis.start()
        database_url = mariadb.url(mariadb.create_database("bench"))
        backend_env = {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis.url(),
            "RATE_LIMIT_WRITES": "100000000",
            "SHUTDOWN_DELAY_SECONDS": "0",
            "POD_NAME": "backend-bench",
        }
        migrate(backend_env)
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
        same_env = {"SHUTDOWN_DELAY_SECONDS": "0", "LOG_LEVEL": "WARNING"}
        apps["same-cached"] = AppProcess(
            "bench.same_work",
            same_env | {"SAME_WORK": "cached", "REDIS_URL": redis.url()},
            workdir / "same-cached.log",
        )
        apps["same-db"] = AppProcess(
            "bench.same_work",
            same_env | {"SAME_WORK": "db", "DATABASE_URL": database_url + "?charset=utf8mb4"},
            workdir / "same-db.log",
        )
        features = [] if args.no_features else FEATURES
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
        has_frontend = not args.no_frontend
        for name in list(apps):
            progress(f"starting {name}")
            startup[name] = start(apps[name])
        if has_frontend:
            backend_url = apps["backend"].url
            frontend_env = {"BACKEND_URL": backend_url, "SHUTDOWN_DELAY_SECONDS": "0"}
            apps["frontend"] = AppProcess("frontend", frontend_env, workdir / "frontend.log")
            apps["frontend-per-request"] = AppProcess(
                "bench.per_request",
                frontend_env,
                workdir / "frontend-per-request.log",
            )
            apps["same-page"] = AppProcess(
                "bench.same_work",
                same_env | {"SAME_WORK": "page", "BACKEND_URL": backend_url},
                workdir / "same-page.log",
            )
            apps["frontend-traced"] = AppProcess(
                "frontend",
                frontend_env
                | traced_env(apps["otlp-sink"])
                | {"BACKEND_URL": apps["backend-traced"].url, "POD_NAME": "frontend-traced"},
                workdir / "frontend-traced.log",
            )
            for name in ("frontend", "frontend-per-request", "same-page", "frontend-traced"):
                progress(f"starting {name}")
                startup[name] = start(apps[name])
        progress("seeding 20 messages")
        seed(apps["backend"].url, 20)

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
            Target("backend POST /api/messages", "backend", "/api/messages", POST_SCRIPT)
        )

        idle_rss = {
            name: rss_mib(app.proc.pid)
            for name, app in apps.items()
            if app.proc and name != "otlp-sink"
        }
        progress("warming up")
        for target in targets:
            run_wrk(apps[target.process].url + target.path, 1, args.connections, target.script)
            if target.same_work:
                run_wrk(apps[target.same_work].url + target.path, 1, args.connections)
        for i in range(len(features)):
            run_wrk(apps[f"feature-{i}"].url + FEATURE_PATH, 1, args.connections)

        bare = Samples()
        results = {t.name: Samples() for t in targets}
        same = {t.name: Samples() for t in targets if t.same_work}
        # Per feature: (CPU µs/request saved, wall µs/request saved) per round;
        # for the reference, its own µs per request.
        saved: list[tuple[list[float], list[float]]] = [([], []) for _ in features]

        def measure(
            name: str, path: str, script: Path | None = None
        ) -> tuple[WrkResult, float, float]:
            app = apps[name]
            return run_wrk(
                app.url + path,
                args.duration,
                args.connections,
                script,
                watch_pid=app.proc.pid if app.proc else None,
            )

        for round_no in range(1, args.rounds + 1):
            for target in targets:
                progress(f"round {round_no}/{args.rounds}: bare, then {target.name}")
                base, base_peak, base_cpu = measure("bare", "/")
                _add(bare, base, base_peak, base_cpu, base.requests_per_s)
                result, peak, cpu = measure(target.process, target.path, target.script)
                _add(results[target.name], result, peak, cpu, base.requests_per_s)
                if target.same_work:
                    progress(f"round {round_no}/{args.rounds}: same-work app for {target.name}")
                    twin, twin_peak, twin_cpu = measure(target.same_work, target.path)
                    _add(same[target.name], twin, twin_peak, twin_cpu, base.requests_per_s)
                    results[target.name].same_ratio.append(
                        result.requests_per_s / twin.requests_per_s if twin.requests_per_s else 0.0
                    )
            if features:
                progress(f"round {round_no}/{args.rounds}: feature costs")
                for i in range(1, len(features)):
                    # A reference run right before each variant: the pair
                    # shares whatever else the machine is doing just then.
                    full, _, full_cpu = measure("feature-0", FEATURE_PATH)
                    saved[0][0].append(full_cpu)
                    saved[0][1].append(1e6 / full.requests_per_s)
                    off, _, off_cpu = measure(f"feature-{i}", FEATURE_PATH)
                    saved[i][0].append(full_cpu - off_cpu)
                    saved[i][1].append(1e6 / full.requests_per_s - 1e6 / off.requests_per_s)

        rows = [Row.from_samples('bare FastAPI `{"ok": true}` (baseline)', bare, "bare")]
        for target in targets:
            rows.append(Row.from_samples(target.name, results[target.name], target.process))
            if target.same_work:
                rows.append(
                    Row.from_samples(
                        f"same-work app for: {target.name}",
                        same[target.name],
                        target.same_work,
                    )
                )
        feature_costs = [
            FeatureCost(label, statistics.median(cpu), statistics.median(wall))
            for (label, _, _), (cpu, wall) in zip(features, saved, strict=True)
        ]
        scale_points = []
        if not args.no_scale:
            scale_points = run_scale(
                mariadb, workdir, QUICK_SIZES if args.quick else SIZES, progress
            )
        shared = next((r for r in rows if r.name.startswith("frontend page / (")), None)
        per_request = next((r for r in rows if "new client" in r.name), None)
        write_report(
            args.output,
            rows=rows,
            idle_rss=idle_rss,
            startup=startup,
            machine=machine_description(),
            command=" ".join(["make bench"] + (["(--quick)"] if args.quick else [])),
            rounds=args.rounds,
            duration=args.duration,
            connections=args.connections,
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
    finally:
        for app in apps.values():
            app.stop()
        redis.stop()
        mariadb.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _add(
    samples: Samples, result: WrkResult, peak: float, cpu_us: float, baseline_rps: float
) -> None:
    samples.rps.append(result.requests_per_s)
    samples.cpu_us.append(cpu_us)
    samples.ratio.append(result.requests_per_s / baseline_rps if baseline_rps else 0.0)
    samples.p50.append(result.p50_ms)
    samples.p99.append(result.p99_ms)
    samples.errors += result.errors
    samples.peak_rss = max(samples.peak_rss, peak)
