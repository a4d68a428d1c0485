"""Rule scaling, measured: connection set-up through a ClusterIP and resync time (full and
partial), with 10, 1,000 and 5,000 other Services in the rules, in kube-proxy's two modes.

The reason kube-proxy grew an nftables mode (KEP-3866): iptables mode matches
a new connection against one rule per Service port in turn, and rewrites
every rule on a full sync; nftables mode finds the Service with one map
lookup. `make bench-rules` measures both on this kernel and writes its section
of docs/benchmarks.md (root: it makes network namespaces; nothing outside them
is written). Run it alone: other work on the cores shows up in the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import doc_section
from bench.rule_netns import PREFIX, SERVER_IP, Topology, bench_netns, remove_orphans
from bench.rule_probe import MEASURED_IP, SERVER_PORT, SERVICE_PORT
from bench.rule_report import SECTION, Round, chart, render

REPO = Path(__file__).resolve().parents[1]
MODES = ("iptables", "nftables")
SIZES = (10, 1_000, 5_000)
QUICK_SIZES = (10, 200)
CONNECTS, QUICK_CONNECTS = 3_000, 100
QUICK_RESYNCS = 3


def resyncs_for(services: int) -> int:
    # A full sync of 5,000 Services takes tens of seconds here: fewer repetitions there.
    return 15 if services <= 1_000 else 5


def _probe(topology: Topology, netns: str, *args: str) -> dict[str, Any]:
    out = topology.exec_run(netns, [sys.executable, "-m", "bench.rule_probe", *args], cwd=REPO)
    return json.loads(out)


def run_round(
    mode: str, services: int, connects: int, resyncs: int, progress: Callable[[str], None]
) -> Round:
    """One mode at one N, in namespaces made for it alone (no conntrack or rules carried over)."""
    topology = Topology.named(f"{mode[:3]}{services}")
    topology.create()
    server = None
    try:
        server = subprocess.Popen(
            topology.exec_argv(
                topology.server,
                [sys.executable, "-m", "bench.rule_probe", "serve", "--port", str(SERVER_PORT)],
            ),
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        if server.stdout.readline().strip() != "listening":
            raise RuntimeError("the server pod's listener did not start")
        progress(f"rules: {mode}, {services:,} other Services: syncing")
        synced = _probe(
            topology,
            topology.node,
            "sync",
            "--mode",
            mode,
            "--services",
            str(services),
            "--resyncs",
            str(resyncs),
            "--server-ip",
            SERVER_IP,
        )
        progress(f"rules: {mode}, {services:,} other Services: {connects} connects")
        timed = _probe(
            topology,
            topology.client,
            "connect",
            "--service",
            f"{MEASURED_IP}:{SERVICE_PORT}",
            "--pod",
            f"{SERVER_IP}:{SERVER_PORT}",
            "--count",
            str(connects),
            "--warmup",
            str(min(100, connects)),
        )
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        topology.delete()
    return Round(
        mode=mode,
        services=services,
        lines=int(synced["lines"]),
        initial_apply_ms=float(synced["initial_apply_ms"]),
        render_ms=list(synced["render_ms"]),
        apply_ms=list(synced["apply_ms"]),
        partial_ms=list(synced["partial_ms"]),
        service_us=list(timed["service_us"]),
        pod_us=list(timed["pod_us"]),
    )


def _versions() -> str:
    """The kernel and the two tools whose speed is measured, as the reader's will differ."""
    tools = []
    for argv in (["iptables", "--version"], ["nft", "--version"]):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        tools.append(done.stdout.strip() or argv[0])
    return f"Linux {platform.release()}, {', '.join(tools)}, {time.strftime('%Y-%m-%d')}"


def unavailable() -> str | None:
    """Why the bench cannot run here, or None."""
    if os.geteuid() != 0:
        return "the rule-scaling bench needs root (network namespaces, iptables, nft)"
    for tool, package in (("ip", "iproute2"), ("iptables", "iptables"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install {package})"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rule_scaling", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="N in (10, 200), few repetitions")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args(argv)
    reason = unavailable()
    if reason:
        print(f"bench.rule_scaling: {reason}", file=sys.stderr)
        return 2

    def progress(message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)

    for name in remove_orphans():
        progress(f"removed {name}, left by a run that was killed")
    sizes = QUICK_SIZES if args.quick else SIZES
    connects = QUICK_CONNECTS if args.quick else CONNECTS
    modes = [m for m in args.modes.split(",") if m]
    rounds = []
    # N outermost: both modes of one N run back to back, so drift on a shared
    # machine touches them alike.
    for services in sizes:
        for mode in modes:
            resyncs = QUICK_RESYNCS if args.quick else resyncs_for(services)
            rounds.append(run_round(mode, services, connects, resyncs, progress))
    # This run's only: another run may be going on beside it.
    left = [name for name in bench_netns() if name.startswith(f"{PREFIX}{os.getpid()}-")]
    if left:
        raise RuntimeError(f"network namespaces left behind: {left}")
    chart_path = args.output.with_name(args.output.stem + "-rules.png")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    chart(chart_path, rounds)
    body = render(rounds, chart_path.name, connects, _versions())
    old = args.output.read_text() if args.output.exists() else "# Benchmarks\n"
    args.output.write_text(doc_section.put(old, SECTION, body))
    progress(f"wrote {args.output} and {chart_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
