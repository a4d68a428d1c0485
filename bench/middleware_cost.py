"""The request middleware as one job per middleware against one pass (issue 27).

The harness of `make bench` (bench/run.py: the same MariaDB, Redis, wrk and
backend processes): three backends on the cached list, all through
bench/variants.py, two with the request middleware as it is
(common/request_middleware.py, seven middlewares) and one with the seven jobs
in one pass (bench/one_pass_middleware.py). Each round runs one, the other
one, then the one pass, back to back: the two identical backends' ratio is
the noise of this machine at this moment, the one pass's ratio to the first
is what the layering costs. Prints the medians; writes nothing.

`python -m bench.middleware_cost [--rounds 5] [--duration 5]`
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bench.processes import start
from bench.progress import progress
from bench.run import seed
from bench.wrk import run_wrk
from localservers.apps import AppProcess, migrate
from localservers.servers import MariaDB, Redis

PATH = "/api/messages"
PROCESSES = {
    "layers": {"BENCH_VARIANT": ""},
    "layers-2": {"BENCH_VARIANT": ""},
    "one-pass": {"BENCH_VARIANT": "one-pass"},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.middleware_cost", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="cip-mwcost-"))
    mariadb = MariaDB(workdir / "mariadb")
    redis = Redis(workdir / "redis")
    apps: dict[str, AppProcess] = {}
    try:
        mariadb.install()
        mariadb.start()
        redis.start()
        env = {
            "DATABASE_URL": mariadb.url(mariadb.create_database("bench")),
            "REDIS_URL": redis.url(),
            "RATE_LIMIT_WRITES": "100000000",
            "SHUTDOWN_DELAY_SECONDS": "0",
        }
        migrate(env)
        for name, variant in PROCESSES.items():
            apps[name] = AppProcess(
                "bench.variants", env | variant | {"POD_NAME": name}, workdir / f"{name}.log"
            )
            start(apps[name])
        seed(apps["layers"].url, 20)
        for app in apps.values():
            run_wrk(app.url + PATH, 1, args.connections)  # warm-up
        rps: dict[str, list[float]] = {name: [] for name in apps}
        cpu: dict[str, list[float]] = {name: [] for name in apps}
        for round_no in range(1, args.rounds + 1):
            progress(f"round {round_no}/{args.rounds}")
            for name, app in apps.items():
                pid = app.proc.pid if app.proc else None
                result, _peak, cpu_us = run_wrk(
                    app.url + PATH, args.duration, args.connections, watch_pid=pid
                )
                rps[name].append(result.requests_per_s)
                cpu[name].append(cpu_us)
        for name in apps:
            print(
                f"{name:10} {statistics.median(rps[name]):8.0f} req/s"
                f"  {statistics.median(cpu[name]):6.1f} µs CPU/request"
            )
        for other in ("layers-2", "one-pass"):
            ratios = [b / a for a, b in zip(rps["layers"], rps[other], strict=True)]
            cpu_ratios = [b / a for a, b in zip(cpu["layers"], cpu[other], strict=True) if a]
            print(
                f"{other} / layers: req/s x{statistics.median(ratios):.3f}"
                f" (rounds {min(ratios):.3f}-{max(ratios):.3f}),"
                f" CPU/request x{statistics.median(cpu_ratios):.3f}"
                f" (rounds {min(cpu_ratios):.3f}-{max(cpu_ratios):.3f})"
            )
    finally:
        for app in apps.values():
            app.stop()
        redis.stop()
        mariadb.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
