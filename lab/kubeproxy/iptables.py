"""kube-proxy's iptables mode, for the lab's Services: the rules and how they are applied.

The rules mirror what kube-proxy writes (`iptables -t nat -S` on a cluster
node), with CIP- in place of KUBE- so the lab never touches a real
kube-proxy's chains:

    PREROUTING/OUTPUT → CIP-SERVICES → CIP-SVC-<hash> (one per Service port)
        → `-m statistic --mode random --probability 1/n` → CIP-SEP-<hash>
        (one per endpoint) → DNAT to podIP:targetPort

A Service with `internalTrafficPolicy: Local` gets CIP-SVL-<hash> instead of
CIP-SVC-<hash>, over this node's endpoints only; with none on this node, the
filter table drops its traffic ("has no local endpoints"). Topology hints
(trafficDistribution) narrow the endpoints in CIP-SVC-<hash> to this node's or
zone's (lab/kubeproxy/topology.py).

plus CIP-MARK-MASQ / CIP-POSTROUTING for hairpin traffic (a pod's connection
to its own Service that the rules balance back to that same pod) and the
filter table's REJECT for a Service with no endpoints.

Each sync renders every CIP chain of a table and loads it with one
`iptables-restore --noflush`, which replaces the declared chains atomically,
as kube-proxy does. The filter table also carries the lab's safety rules
(CIP-FORWARD, CIP-INPUT, CIP-OUTPUT): lab traffic never leaves the lab's
interfaces, pods cannot open connections to the host, and a Service IP that
was not translated is rejected at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from lab.iptables import Hook, declared_chains, restore_text
from lab.kubeproxy.model import (
    DEFAULT_NODE,
    Apply,
    Endpoint,
    NodeTopology,
    ProxyState,
    ServicePortRules,
    sep_chain,
)
from lab.kubeproxy.topology import Categorized, categorize
from lab.naming import (
    CHAIN_PREFIX,
    IFACE_WILDCARD,
    MASQ_MARK,
    NODE_IFACE,
    POD_CIDR,
    SERVICE_CIDR,
)

SERVICES = f"{CHAIN_PREFIX}SERVICES"
MARK_MASQ = f"{CHAIN_PREFIX}MARK-MASQ"
POSTROUTING = f"{CHAIN_PREFIX}POSTROUTING"
FORWARD = f"{CHAIN_PREFIX}FORWARD"
INPUT = f"{CHAIN_PREFIX}INPUT"
OUTPUT = f"{CHAIN_PREFIX}OUTPUT"

# (table, built-in chain, rule spec after `-A CHAIN`): the only rules the lab
# adds outside its own chains. Each is narrowed to lab traffic, so the host's
# other traffic never even enters a CIP chain.
HOOKS: tuple[Hook, ...] = (
    ("nat", "PREROUTING", ("-i", IFACE_WILDCARD, "-j", SERVICES)),
    ("nat", "OUTPUT", ("-d", str(SERVICE_CIDR), "-j", SERVICES)),
    ("nat", "POSTROUTING", ("-o", IFACE_WILDCARD, "-j", POSTROUTING)),
    ("filter", "FORWARD", ("-j", FORWARD)),
    ("filter", "INPUT", ("-i", IFACE_WILDCARD, "-j", INPUT)),
    ("filter", "OUTPUT", ("-j", OUTPUT)),
)


def probability(i: int, n: int) -> str:
    # kube-proxy's "%0.10f": endpoint i of n is picked with 1/(n-i) of what is left.
    return f"{1.0 / (n - i):0.10f}"


def _comment(text: str) -> list[str]:
    return ["-m", "comment", "--comment", f'"{text}"']


def _to_cluster_ip(spr: ServicePortRules, comment: str) -> list[str]:
    """Match one Service port's ClusterIP, as kube-proxy's rules spell it."""
    proto = spr.protocol.lower()
    return [
        "-d",
        f"{spr.cluster_ip}/32",
        "-p",
        proto,
        *_comment(comment),
        "-m",
        proto,
        "--dport",
        str(spr.port),
    ]


def _affinity_rules(
    spr: ServicePortRules, chain: str, endpoints: Sequence[Endpoint]
) -> list[list[str]]:
    """sessionAffinity: ClientIP. A client seen within the timeout goes back to the endpoint
    it was sent to (the `recent` list named after the endpoint's chain, filled by `--set`)."""
    rules = []
    for ep in endpoints:
        target = f"{ep.ip}:{ep.port}"
        sep = sep_chain(spr.port_name, spr.protocol, target)
        rules.append(
            [
                "-A",
                chain,
                *_comment(f"{spr.port_name} -> {target}"),
                "-m",
                "recent",
                "--name",
                sep,
                "--rcheck",
                "--seconds",
                str(spr.affinity_timeout),
                "--reap",
                "-j",
                sep,
            ]
        )
    return rules


def _endpoint_rules(spr: ServicePortRules, ep: Endpoint) -> list[list[str]]:
    """One CIP-SEP chain: hairpin masquerade, then DNAT to the pod."""
    target = f"{ep.ip}:{ep.port}"
    sep = sep_chain(spr.port_name, spr.protocol, target)
    proto = spr.protocol.lower()
    sticky = spr.affinity_timeout is not None
    return [
        # Hairpin: when a pod's connection to its Service is balanced back to that
        # same pod, the reply must come from the Service, so the node masquerades it.
        ["-A", sep, "-s", f"{ep.ip}/32", *_comment(spr.port_name), "-j", MARK_MASQ],
        [
            "-A",
            sep,
            "-p",
            proto,
            *_comment(spr.port_name),
            *(["-m", "recent", "--name", sep, "--set"] if sticky else []),
            "-m",
            proto,
            "-j",
            "DNAT",
            "--to-destination",
            target,
        ],
    ]


def _service_nat(
    spr: ServicePortRules, found: Categorized, chains: list[str], rules: list[list[str]]
) -> None:
    """One Service port's nat rules: CIP-SVC (Cluster policy) or CIP-SVL (Local policy),
    the random pick over its endpoints, and one CIP-SEP chain per endpoint."""
    endpoints = found.policy(spr.internal_traffic_local)
    if not endpoints:
        return  # the filter table rejects it, or drops it ("has no local endpoints")
    chain = spr.svl_chain if spr.internal_traffic_local else spr.svc_chain
    chains.append(chain)
    to_ip = _to_cluster_ip(spr, f"{spr.port_name} cluster IP")
    rules.append(["-A", SERVICES, *to_ip, "-j", chain])
    # Traffic from outside the pod network (the node itself) is masqueraded so the
    # pod's reply comes back through this node.
    rules.append(["-A", chain, "!", "-s", str(POD_CIDR), *to_ip, "-j", MARK_MASQ])
    if spr.affinity_timeout is not None:
        rules += _affinity_rules(spr, chain, endpoints)
    n = len(endpoints)
    for i, ep in enumerate(endpoints):
        target = f"{ep.ip}:{ep.port}"
        sep = sep_chain(spr.port_name, spr.protocol, target)
        chains.append(sep)
        pick = ["-A", chain, *_comment(f"{spr.port_name} -> {target}")]
        if i < n - 1:
            pick += ["-m", "statistic", "--mode", "random", "--probability", probability(i, n)]
        rules.append([*pick, "-j", sep])
        rules += _endpoint_rules(spr, ep)
    for ep in found.reachable:
        if ep not in endpoints:  # never for a ClusterIP-only port (see topology.py)
            chains.append(sep_chain(spr.port_name, spr.protocol, f"{ep.ip}:{ep.port}"))
            rules += _endpoint_rules(spr, ep)


def render_nat(
    ports: Sequence[ServicePortRules],
    stale: Iterable[str] = (),
    node: NodeTopology = DEFAULT_NODE,
) -> str:
    """The nat table's CIP chains, as `iptables-restore --noflush` input."""
    chains = [SERVICES, MARK_MASQ, POSTROUTING]
    rules: list[list[str]] = [
        ["-A", MARK_MASQ, "-j", "MARK", "--or-mark", MASQ_MARK],
        [
            "-A",
            POSTROUTING,
            "-m",
            "mark",
            "!",
            "--mark",
            f"{MASQ_MARK}/{MASQ_MARK}",
            "-j",
            "RETURN",
        ],
        # Clear the bit so a packet that is re-evaluated is not masqueraded twice.
        ["-A", POSTROUTING, "-j", "MARK", "--xor-mark", MASQ_MARK],
        [
            "-A",
            POSTROUTING,
            *_comment("service traffic requiring SNAT"),
            "-j",
            "MASQUERADE",
            "--random-fully",
        ],
    ]
    for spr in sorted(ports, key=lambda p: (p.port_name, p.protocol)):
        _service_nat(spr, categorize(spr, node), chains, rules)
    return restore_text("nat", chains, rules, stale)


def render_filter(
    ports: Sequence[ServicePortRules],
    stale: Iterable[str] = (),
    node: NodeTopology = DEFAULT_NODE,
) -> str:
    """The filter table's CIP chains: no-endpoint REJECTs and the lab's safety rules.

    CIP-FORWARD only drops and rejects: what it lets through returns to
    FORWARD, where the CNI's chain (lab/cni/rules.py) comes next and accepts
    pod-to-pod traffic that the NetworkPolicies allow.
    """
    lab = IFACE_WILDCARD
    chains = [SERVICES, FORWARD, INPUT, OUTPUT]
    reject = ["-j", "REJECT", "--reject-with", "icmp-port-unreachable"]
    rules: list[list[str]] = []
    for spr in sorted(ports, key=lambda p: (p.port_name, p.protocol)):
        found = categorize(spr, node)
        if not found.has_any:
            comment = f"{spr.port_name} has no endpoints"
            rules.append(["-A", SERVICES, *_to_cluster_ip(spr, comment), *reject])
        elif not found.policy(spr.internal_traffic_local):
            # internalTrafficPolicy: Local and no endpoint on this node: kube-proxy drops
            # (not rejects) the ClusterIP's traffic here, whatever other nodes have.
            comment = f"{spr.port_name} has no local endpoints"
            rules.append(["-A", SERVICES, *_to_cluster_ip(spr, comment), "-j", "DROP"])
    never_leaves = _comment("lab traffic never leaves the lab's interfaces")
    rules += [
        ["-A", FORWARD, "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP"],
        ["-A", FORWARD, "-i", lab, "!", "-o", lab, *never_leaves, "-j", "DROP"],
        ["-A", FORWARD, "!", "-i", lab, "-o", lab, *never_leaves, "-j", "DROP"],
    ]
    for cidr in (POD_CIDR, SERVICE_CIDR):
        rules.append(["-A", FORWARD, "-s", str(cidr), "!", "-o", lab, *never_leaves, "-j", "DROP"])
        rules.append(["-A", FORWARD, "-d", str(cidr), "!", "-o", lab, *never_leaves, "-j", "DROP"])
    rules += [
        # Not lab traffic: leave it to the host's own rules.
        ["-A", FORWARD, "!", "-i", lab, "-j", "RETURN"],
        ["-A", FORWARD, "-m", "conntrack", "--ctstate", "NEW", "-j", SERVICES],
        [
            "-A",
            FORWARD,
            "-d",
            str(SERVICE_CIDR),
            *_comment("a service IP and port no Service has"),
            *reject,
        ],
        ["-A", FORWARD, "-o", NODE_IFACE, "-j", "DROP"],
        ["-A", INPUT, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
        ["-A", INPUT, *_comment("pods may not open connections to the host"), *reject],
        ["-A", OUTPUT, "-m", "conntrack", "--ctstate", "NEW", "-j", SERVICES],
        [
            "-A",
            OUTPUT,
            "-d",
            str(SERVICE_CIDR),
            *_comment("a service IP and port no Service has"),
            *reject,
        ],
    ]
    return restore_text("filter", chains, rules, stale)


class IptablesMode:
    name = "iptables"
    hooks: tuple[Hook, ...] = HOOKS

    def __init__(self, restore_bin: str = "iptables-restore", iptables_bin: str = "iptables"):
        self.restore_bin = restore_bin
        self.iptables_bin = iptables_bin
        self.chains: dict[str, set[str]] = {"nat": set(), "filter": set()}

    def render(self, state: ProxyState, now: float) -> tuple[Apply, ...]:
        nat = render_nat(state.ports, self.chains["nat"], state.node)
        filt = render_filter(state.ports, self.chains["filter"], state.node)
        argv = (self.restore_bin, "--noflush")
        return (Apply(argv, nat), Apply(argv, filt))

    def applied(self, applies: Sequence[Apply], now: float) -> None:
        self.chains = {
            "nat": declared_chains(applies[0].text),
            "filter": declared_chains(applies[1].text),
        }

    def cleanup_script(self) -> tuple[Apply, ...]:
        return ()  # the CIP- chains: Iptables.remove_lab_rules reads and removes them

    def rules_commands(self) -> tuple[tuple[str, ...], ...]:
        return ((self.iptables_bin, "-t", "nat", "-S"), (self.iptables_bin, "-t", "filter", "-S"))
