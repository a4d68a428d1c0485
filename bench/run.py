"""Drive the benchmark: start every tier, alternate bare and target runs, write the report."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.report import Row, write_report
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


@dataclass
class Samples:
    rps: list[float] = field(default_factory=list)
    ratio: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    errors: int = 0
    peak_rss: float = 0.0


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
        has_frontend = not args.no_frontend
        for name in ("bare", "backend", "backend-mysql"):
            progress(f"starting {name}")
            startup[name] = start(apps[name])
        if has_frontend:
            backend_url = apps["backend"].url
            frontend_env = {"BACKEND_URL": backend_url, "SHUTDOWN_DELAY_SECONDS": "0"}
            apps["frontend"] = AppProcess("frontend", frontend_env, workdir / "frontend.log")
            apps["frontend-per-request"] = AppProcess(
                "frontend",
                frontend_env | {"BACKEND_CLIENT_PER_REQUEST": "true"},
                workdir / "frontend-per-request.log",
            )
            for name in ("frontend", "frontend-per-request"):
                progress(f"starting {name}")
                startup[name] = start(apps[name])
        progress("seeding 20 messages")
        seed(apps["backend"].url, 20)

        targets = [
            Target("backend GET /api/messages (Redis)", "backend", "/api/messages"),
            Target("backend GET /api/messages (MySQL only)", "backend-mysql", "/api/messages"),
        ]
        if has_frontend:
            targets += [
                Target("frontend page / (frontend → backend → Redis)", "frontend", "/"),
                Target("frontend GET /api/route", "frontend", "/api/route"),
                Target(
                    "frontend page /, new client per request",
                    "frontend-per-request",
                    "/",
                    note="shared-client comparison only",
                ),
            ]
        # Writes last in a round: they invalidate the cache the reads use.
        targets.append(
            Target("backend POST /api/messages", "backend", "/api/messages", POST_SCRIPT)
        )

        idle_rss = {name: rss_mib(app.proc.pid) for name, app in apps.items() if app.proc}
        progress("warming up")
        for target in targets:
            run_wrk(apps[target.process].url + target.path, 1, args.connections, target.script)

        bare = Samples()
        results = {t.name: Samples() for t in targets}
        bare_url = apps["bare"].url + "/"
        for round_no in range(1, args.rounds + 1):
            for target in targets:
                progress(f"round {round_no}/{args.rounds}: bare, then {target.name}")
                base, base_peak = run_wrk(
                    bare_url, args.duration, args.connections, watch_pid=apps["bare"].proc.pid
                )
                _add(bare, base, base_peak, base.requests_per_s)
                app = apps[target.process]
                result, peak = run_wrk(
                    app.url + target.path,
                    args.duration,
                    args.connections,
                    target.script,
                    watch_pid=app.proc.pid if app.proc else None,
                )
                _add(results[target.name], result, peak, base.requests_per_s)

        rows = [Row.from_samples('bare FastAPI `{"ok": true}` (baseline)', bare, "bare")]
        for target in targets:
            rows.append(Row.from_samples(target.name, results[target.name], target.process))
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


def _add(samples: Samples, result: WrkResult, peak: float, baseline_rps: float) -> None:
    samples.rps.append(result.requests_per_s)
    samples.ratio.append(result.requests_per_s / baseline_rps if baseline_rps else 0.0)
    samples.p50.append(result.p50_ms)
    samples.p99.append(result.p99_ms)
    samples.errors += result.errors
    samples.peak_rss = max(samples.peak_rss, peak)
