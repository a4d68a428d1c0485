"""The CNI's iptables chains on the node: pod-to-pod traffic through the policies, then accepted.

    FORWARD → CIP-CNI-FORWARD: anything but pod-to-pod traffic returns;
        → CIP-NETPOL (lab/cni/policy.py: the pods' CIP-NP-* chains) → ACCEPT

as the CNI firewall plugin's CNI-FORWARD accepts its pods' traffic, so it
flows even where the host's FORWARD policy is DROP (Docker's). The policy
chains sit in the filter table's FORWARD, after kube-proxy's DNAT: policy
sees the real pod address and port whether a connection was opened to a
ClusterIP or to the pod. In iptables mode kube-proxy's CIP-FORWARD (its
fences and REJECTs) is before CIP-CNI-FORWARD in FORWARD, so what it rejects
is rejected before the ACCEPT here (lab/cluster.py installs the hooks in that
order); in nftables mode kube-proxy's fences are base chains of its own table,
which a packet must pass as well: an ACCEPT here does not skip them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from lab.cni.policy import NETPOL, POD_CHAIN_PREFIX
from lab.iptables import Hook, restore_text
from lab.naming import CHAIN_PREFIX, IFACE_WILDCARD, NODE_IFACE

FORWARD = f"{CHAIN_PREFIX}CNI-FORWARD"
HOOKS: tuple[Hook, ...] = (("filter", "FORWARD", ("-j", FORWARD)),)


def render(
    netpol_chains: Sequence[str] = (),
    netpol_rules: Sequence[Sequence[str]] = (),
    stale: Iterable[str] = (),
    trusted: Sequence[str] = (),
) -> str:
    """The filter table's CNI chains, as `iptables-restore --noflush` input.

    `netpol_chains` and `netpol_rules`: what compile_policies made (no policy:
    CIP-NETPOL is empty and every pod-to-pod connection passes). `stale`: the
    CNI's chains the last sync left, deleted when no longer wanted. `trusted`: sources
    accepted before the policies: of several nodes, the host's address on the nodes'
    network, where every node's kubelet probes from (a node's own traffic to its pods
    never meets the policies, and the lab's kubelets all run on the host).
    """
    lab = IFACE_WILDCARD
    rules: list[list[str]] = [
        ["-A", FORWARD, "!", "-i", lab, "-j", "RETURN"],
        ["-A", FORWARD, "!", "-o", lab, "-j", "RETURN"],
        # The node interface only leads to the sink; kube-proxy's fences drop it.
        ["-A", FORWARD, "-o", NODE_IFACE, "-j", "RETURN"],
        *(["-A", FORWARD, "-s", f"{source}/32", "-j", "ACCEPT"] for source in trusted),
        ["-A", FORWARD, "-j", NETPOL],
        ["-A", FORWARD, "-j", "ACCEPT"],
    ]
    rules += [list(rule) for rule in netpol_rules]
    return restore_text("filter", [FORWARD, NETPOL, *netpol_chains], rules, stale)


def is_cni_chain(chain: str) -> bool:
    return chain in (FORWARD, NETPOL) or chain.startswith(POD_CHAIN_PREFIX)


def is_cni_line(line: str) -> bool:
    """A line of `iptables -t filter -S` that is the CNI's: its chains, their rules, its hook."""
    parts = line.split()
    if len(parts) >= 2 and parts[0] in ("-N", "-A") and is_cni_chain(parts[1]):
        return True
    return parts[:1] == ["-A"] and f"-j {FORWARD}" in line
