"""The rule-scaling bench's section of docs/benchmarks.md: a table, ratios to N=10, a chart."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.rule_probe import ENDPOINTS_PER_SERVICE

SECTION = "rule-scaling"


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: a value that was measured, never interpolated."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class Round:
    """One mode at one number of filler Services: what the probes returned."""

    mode: str
    services: int
    lines: int
    initial_apply_ms: float
    render_ms: list[float]
    apply_ms: list[float]
    partial_ms: list[float]
    service_us: list[float]
    pod_us: list[float]

    @property
    def connect_median(self) -> float:
        return statistics.median(self.service_us)

    @property
    def resync_median(self) -> float:
        return statistics.median(self.apply_ms)

    @property
    def partial_median(self) -> float:
        return statistics.median(self.partial_ms)


def _ratio(value: float, base: float) -> str:
    if not base:
        return "-"
    ratio = value / base
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.0f}x"


def chart(path: Path, rounds: Sequence[Round]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=110)
    for mode, color in (("iptables", "#c0392b"), ("nftables", "#2471a3")):
        mine = sorted((r for r in rounds if r.mode == mode), key=lambda r: r.services)
        if not mine:
            continue
        xs = [r.services for r in mine]
        left.plot(
            xs,
            [r.connect_median for r in mine],
            "o-",
            color=color,
            label=f"{mode}, to the ClusterIP",
        )
        left.plot(
            xs,
            [statistics.median(r.pod_us) for r in mine],
            "^:",
            color=color,
            alpha=0.8,
            label=f"{mode}, to a pod IP (no Service)",
        )
        right.plot(xs, [r.resync_median for r in mine], "s-", color=color, label=f"{mode} full")
        right.plot(
            xs,
            [r.partial_median for r in mine],
            "d:",
            color=color,
            alpha=0.8,
            label=f"{mode} partial (kube-proxy's usual)",
        )
    left.set_title("new TCP connection set-up (median)")
    left.set_ylabel("µs (fresh TCP connect)")
    left.set_ylim(bottom=0)
    right.set_title("resync after one endpoint changed (median)")
    right.set_ylabel("ms (iptables-restore / nft -f)")
    right.set_yscale("log")
    # Linear on the left: iptables mode's walk is one rule per Service, a straight line.
    right.set_xscale("log")
    for ax in (left, right):
        ax.set_xlabel("other Services in the rules")
        ax.grid(True, which="both", linewidth=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def render(rounds: Sequence[Round], chart_name: str, connects: int, versions: str) -> str:
    runs = ", ".join(
        f"{r.services:,}: {len(r.apply_ms)}" for r in rounds if r.mode == rounds[0].mode
    )
    lines = [
        "## Rule scaling: kube-proxy's iptables mode against its nftables mode",
        "",
        f"`make bench-rules` (`bench/rule_scaling.py`); {versions}. For each mode and each "
        "number N of other Services, three private network namespaces (client pod, node, "
        "server pod; `bench/rule_netns.py`) get the rules the lab renders "
        "(`lab/kubeproxy/iptables.py`, `lab/kubeproxy/nftables.py`) for N Services of "
        f"{ENDPOINTS_PER_SERVICE} endpoints each plus the measured Service, whose one endpoint "
        "is a listener in the server pod. The node holds the rules, as a cluster node does: "
        "a connection from the client pod to the ClusterIP is translated in the node's "
        "PREROUTING and forwarded to the server pod. Each mode and N gets namespaces of its "
        "own, so no rule or conntrack entry is carried over.",
        "",
        "- **connect**: a fresh TCP `connect()` from the client pod to the ClusterIP (SYN "
        f"out, SYN-ACK back), {connects:,} connections, each closed with a reset. Only a "
        "connection's first packet walks the NAT rules; later ones follow conntrack, so "
        "set-up is where the rules cost.",
        "- **where the measured Service sits**: in iptables mode its rule is the *last* of "
        "CIP-SERVICES (the lab writes that chain in name order and the measured Service sorts "
        "last), so every SYN is matched against the N other Services' rules first: the worst "
        "case. kube-proxy writes KUBE-SERVICES in Go map order, so a real Service sits "
        "anywhere in it, on average halfway. In nftables mode the position does not matter: "
        "one lookup in the `service-ips` verdict map.",
        "- **to a pod IP**: the same number of connects, interleaved, straight to the server "
        "pod's address, no Service involved. In iptables mode they still walk every rule of "
        "CIP-SERVICES (as KUBE-SERVICES, it is jumped to for every new connection entering "
        "the node) and match none: every pod's new connections pay for the Services, not "
        "only those to a ClusterIP.",
        "- **full resync**: wall time of applying one full sync after one endpoint of one "
        "other Service changed: iptables mode, one `iptables-restore --noflush` with the "
        "nat and filter tables (as kube-proxy's syncProxyRules); nftables mode, one `nft -f` "
        "transaction that rewrites the table (as the lab does on every change). Process "
        "start included, Python's rendering of the text not (the *render* column).",
        "- **partial resync**: the same change applied as kube-proxy applies most changes, "
        "only what changed: iptables mode (`MinimizeIPTablesRestore`) the whole "
        "CIP-SERVICES chain, the changed Service's chains and the filter table; nftables "
        "mode the changed Service's chains alone. Cut from the full sync's text "
        "(`bench/rule_probe.py`); the bench checks the kernel then sends that Service to "
        "its new endpoint and no longer to the old one.",
        f"- Repetitions of each resync, by N: {runs}. *lines*: lines of kube-proxy's input "
        "for one full sync. Ratios are to N=10 of the same mode in the same run.",
        "",
        "| mode | other Services | lines | connect median µs | p90 µs | p99 µs | "
        "connect vs N=10 | to a pod IP, median µs | full resync median ms | p90 ms | "
        "vs N=10 | partial resync median ms | p90 ms | vs N=10 | render ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in ("iptables", "nftables"):
        mine = sorted((r for r in rounds if r.mode == mode), key=lambda r: r.services)
        if not mine:
            continue
        base = mine[0]
        for r in mine:
            lines.append(
                f"| {mode} | {r.services:,} | {r.lines:,} | {r.connect_median:.0f} | "
                f"{percentile(r.service_us, 90):.0f} | {percentile(r.service_us, 99):.0f} | "
                f"{_ratio(r.connect_median, base.connect_median)} | "
                f"{statistics.median(r.pod_us):.0f} | {r.resync_median:.1f} | "
                f"{percentile(r.apply_ms, 90):.1f} | "
                f"{_ratio(r.resync_median, base.resync_median)} | {r.partial_median:.1f} | "
                f"{percentile(r.partial_ms, 90):.1f} | "
                f"{_ratio(r.partial_median, base.partial_median)} | "
                f"{statistics.median(r.render_ms):.1f} |"
            )
    lines += ["", _verdict(rounds), "", f"![rule scaling, both modes]({chart_name})", ""]
    return "\n".join(lines)


def _verdict(rounds: Sequence[Round]) -> str:
    """One sentence on the largest N: what each mode's connect costs over its N=10."""
    parts = []
    for mode in ("iptables", "nftables"):
        mine = sorted((r for r in rounds if r.mode == mode), key=lambda r: r.services)
        if len(mine) < 2:
            continue
        first, last = mine[0], mine[-1]
        extra = last.connect_median - first.connect_median
        per_thousand = extra / (last.services - first.services) * 1000
        parts.append(
            f"{mode}: {extra:+.0f} µs per new connection ({per_thousand:+.1f} µs per 1,000 "
            "Services), "
            f"{_ratio(last.resync_median, first.resync_median)} the full resync time and "
            f"{_ratio(last.partial_median, first.partial_median)} the partial resync time at "
            f"{last.services:,} other Services against {first.services:,}"
        )
    return ("In this run, " + "; ".join(parts) + ".") if parts else ""
