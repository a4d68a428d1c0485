"""`bench.rule_scaling --quick` runs in both proxy modes, writes its section and leaves nothing
behind. Its numbers are not checked: timing belongs to `make bench-rules`, never to a test.

Here rather than in tests/bench: it makes network namespaces and rules, so it runs where the lab
tests run (as root, one at a time), and skips without root or nft (fails under CI=true)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.rule_netns import PREFIX, bench_netns
from bench.rule_probe import NAMESPACE
from bench.rule_scaling import unavailable
from tests.conftest import missing
from tests.lab.labctl import REPO

pytestmark = pytest.mark.lab


def _host_rules() -> str:
    """The host's own firewall, both views: what the bench must never write to."""
    iptables = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True)
    nft = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=True)
    return iptables.stdout + nft.stdout


def test_quick_rule_bench_writes_its_section_and_leaves_nothing(tmp_path: Path) -> None:
    reason = unavailable()
    if reason:
        missing(reason)
    # A killed run's namespaces (a pid that cannot exist) are removed by the next run.
    orphan = f"{PREFIX}999999999-x-node"
    subprocess.run(["ip", "netns", "add", orphan], check=True)
    output = tmp_path / "benchmarks.md"
    # A page written by `make bench`: the section goes before "## Machine", the rest stays.
    output.write_text("# Benchmarks\n\nthe main table\n\n## Machine\n\n- cores: 2\n")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.rule_scaling", "--quick", "--output", str(output)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        subprocess.run(["ip", "netns", "del", orphan], capture_output=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"removed {orphan}" in done.stdout

    # Every namespace of the run is gone, and with them their rules and nft tables: the
    # Services' names (`rulebench/…`) are nowhere in the host's iptables or nftables.
    assert bench_netns() == []
    assert f"{NAMESPACE}/" not in _host_rules()

    report = output.read_text()
    assert report.startswith("# Benchmarks\n\nthe main table\n\n<!-- rule-scaling: start -->")
    assert report.endswith("<!-- rule-scaling: end -->\n\n## Machine\n\n- cores: 2\n")
    for mode in ("iptables", "nftables"):
        for services in ("10", "200"):
            assert f"| {mode} | {services} |" in report, f"no row for {mode} at N={services}"
    assert (tmp_path / "benchmarks-rules.png").stat().st_size > 1000
    assert "[bench " in done.stdout
