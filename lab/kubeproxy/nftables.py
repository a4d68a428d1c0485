"""kube-proxy's nftables mode, for the lab's Services: the `nft -f` script of one full sync.

The layout is the one kube-proxy's nftables proxier writes (`nft list table
ip kube-proxy` on a cluster node; kubernetes/kubernetes pkg/proxy/nftables),
in a table of the lab's own, `ip cip-kube-proxy`, so it never touches a real
kube-proxy's:

    nat-prerouting / nat-output → services:
        ip daddr . meta l4proto . th dport vmap @service-ips
    @service-ips: 10.96.40.39 . tcp . 8000 : goto service-BJBNN6UP-clusterip-demo/backend/tcp/http
    service-…:   numgen random mod 3 vmap { 0 : goto endpoint-…, 1 : goto endpoint-…, … }
    endpoint-…:  meta l4proto tcp dnat to 10.244.1.5:8000

One map lookup finds the Service whatever the number of Services, where
iptables mode walks one rule per Service port: that, and rewriting only
what changed, is why kube-proxy grew this mode (KEP-3866). Here every sync is
one `nft -f` transaction that empties every chain of the table (`flush
table`: rules only, so the affinity sets keep their entries) and writes them
again; the kernel applies it atomically or not at all.

Besides kube-proxy's chains the table carries the lab's safety fences, in
chains of its own (`lab-forward`, `lab-input`): lab traffic never leaves the
lab's interfaces and pods cannot open connections to the host, as CIP-FORWARD
and CIP-INPUT do in iptables mode. The NetworkPolicies stay in iptables (the
CNI plugin's part, see lab/cni/), as on a node whose kube-proxy runs in
nftables mode beside a policy plugin that writes iptables rules.

A Service with `internalTrafficPolicy: Local` goes to a `local-…` chain over
this node's endpoints instead of `service-…`; with none on this node, its
@no-endpoint-services element is `drop` (kube-proxy's "no local endpoints"),
where a Service with no endpoint at all gets `goto reject-chain`. Topology
hints (trafficDistribution) narrow the endpoints of `service-…` to this
node's or zone's (lab/kubeproxy/topology.py).

What the lab leaves out: NodePorts, LoadBalancers, externalIPs (the
manifests may not ask for them), IPv6.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from collections.abc import Iterable, Sequence

from lab.iptables import Hook
from lab.kubeproxy.model import (
    DEFAULT_NODE,
    Apply,
    Endpoint,
    NodeTopology,
    ProxyState,
    ServicePortRules,
    run_apply,
)
from lab.kubeproxy.topology import Categorized, categorize
from lab.naming import IFACE_PREFIX, MASQ_MARK, NODE_IFACE, POD_CIDR, SERVICE_CIDR

FAMILY = "ip"
# kube-proxy's table is `ip kube-proxy`; the lab's prefix keeps the two apart
# and lets cleanup find the lab's by name.
TABLE = "cip-kube-proxy"
T = f"{FAMILY} {TABLE}"
# `cip*` is how nft spells "any interface whose name starts with cip".
LAB_IFACES = f'"{IFACE_PREFIX}*"'

# kube-proxy's names (pkg/proxy/nftables/proxier.go).
SERVICES = "services"
SERVICE_IPS = "service-ips"
CLUSTER_IPS = "cluster-ips"
NO_ENDPOINT_SERVICES = "no-endpoint-services"
SERVICE_ENDPOINTS_CHECK = "service-endpoints-check"
CLUSTER_IPS_CHECK = "cluster-ips-check"
REJECT_CHAIN = "reject-chain"
MARK_MASQ = "mark-for-masquerade"
MASQUERADING = "masquerading"
# The lab's own chains, not kube-proxy's.
LAB_FORWARD = "lab-forward"
LAB_INPUT = "lab-input"

# name → (type, hook, priority), as kube-proxy declares its base chains.
BASE_CHAINS: tuple[tuple[str, str, str, int], ...] = (
    ("filter-forward", "filter", "forward", 0),
    ("filter-input", "filter", "input", 0),
    ("filter-output", "filter", "output", 0),
    ("nat-output", "nat", "output", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
    ("nat-prerouting", "nat", "prerouting", -100),
)
REGULAR_CHAINS = (
    CLUSTER_IPS_CHECK,
    MARK_MASQ,
    MASQUERADING,
    SERVICES,
    SERVICE_ENDPOINTS_CHECK,
    LAB_FORWARD,
    LAB_INPUT,
)
# kube-proxy deletes a stale chain only once it has been unreferenced this long.
STALE_CHAIN_DELAY = 1.0
VMAP_TYPE = "ipv4_addr . inet_proto . inet_service : verdict"

# The longest name knftables allows (NameLengthMax) minus kube-proxy's longest prefix.
_BASE_MAX = 256 - 16
NEVER_LEAVES = 'comment "lab traffic never leaves the lab\'s interfaces"'


def _hash_and_truncate(name: str) -> str:
    """kube-proxy's hashAndTruncate: 8 base32 characters of the name's sha256, then the name."""
    digest = base64.b32encode(hashlib.sha256(name.encode()).digest()).decode()
    name = f"{digest[:8]}-{name}"
    if len(name) > _BASE_MAX:
        name = name[: _BASE_MAX - 3] + "..."
    return name


def _parts(spr: ServicePortRules) -> tuple[str, str, str]:
    """namespace, Service and port name from kube-proxy's "ns/svc:port" string."""
    namespaced, _, port = spr.port_name.partition(":")
    namespace, _, name = namespaced.partition("/")
    return namespace, name, port


def chain_base(spr: ServicePortRules) -> str:
    """`HASH-ns/svc/tcp/port`, as kube-proxy's servicePortChainNameBase."""
    namespace, name, port = _parts(spr)
    return _hash_and_truncate(f"{namespace}/{name}/{spr.protocol.lower()}/{port}")


def endpoint_base(spr: ServicePortRules, ip: str, port: int) -> str:
    """`HASH-ns/svc/tcp/port__ip/port`, as kube-proxy's servicePortEndpointChainNameBase."""
    namespace, name, svc_port = _parts(spr)
    proto = spr.protocol.lower()
    return _hash_and_truncate(f"{namespace}/{name}/{proto}/{svc_port}__{ip}/{port}")


def service_chain(spr: ServicePortRules) -> str:
    return f"service-{chain_base(spr)}"


def endpoint_chain(spr: ServicePortRules, ip: str, port: int) -> str:
    return f"endpoint-{endpoint_base(spr, ip, port)}"


def affinity_set(spr: ServicePortRules, ip: str, port: int) -> str:
    return f"affinity-{endpoint_base(spr, ip, port)}"


def _quote(text: str) -> str:
    return '"' + text.replace('"', "'") + '"'


def _base(lines: list[str]) -> None:
    """The table's fixed part: kube-proxy's base chains, maps and helpers, the lab's fences."""
    lines += [
        f"add set {T} {CLUSTER_IPS} {{ type ipv4_addr ; comment {_quote('Active ClusterIPs')} ; }}",
        f"add map {T} {NO_ENDPOINT_SERVICES} {{ type {VMAP_TYPE} ; comment "
        f"{_quote('vmap to drop or reject packets to services with no endpoints')} ; }}",
        f"add map {T} {SERVICE_IPS} {{ type {VMAP_TYPE} ; comment "
        f"{_quote('ClusterIP, ExternalIP and LoadBalancer IP traffic')} ; }}",
        # Rebuilt in full on every sync, as kube-proxy does.
        f"flush set {T} {CLUSTER_IPS}",
        f"flush map {T} {NO_ENDPOINT_SERVICES}",
        f"flush map {T} {SERVICE_IPS}",
    ]
    for name, kind, hook, priority in BASE_CHAINS:
        lines.append(f"add chain {T} {name} {{ type {kind} hook {hook} priority {priority} ; }}")
    for name in REGULAR_CHAINS:
        lines.append(f"add chain {T} {name}")
    lines.append(
        f"add chain {T} {REJECT_CHAIN} {{ comment {_quote('helper for @no-endpoint-services')} ; }}"
    )
    svc_cidr, pod_cidr = str(SERVICE_CIDR), str(POD_CIDR)
    lines += [
        # kube-proxy's checks. Filter chains run after DNAT (priority 0 after
        # -100), so a packet still addressed to a ClusterIP here was not
        # translated: a Service without endpoints (rejected), a port the
        # Service does not have (rejected) or an address no Service has (dropped).
        f"add rule {T} filter-forward ct state new jump {SERVICE_ENDPOINTS_CHECK}",
        f"add rule {T} filter-forward ct state new jump {CLUSTER_IPS_CHECK}",
        f"add rule {T} filter-forward jump {LAB_FORWARD}",
        f"add rule {T} filter-input ct state new jump {SERVICE_ENDPOINTS_CHECK}",
        f"add rule {T} filter-input iifname {LAB_IFACES} jump {LAB_INPUT}",
        f"add rule {T} filter-output ct state new jump {SERVICE_ENDPOINTS_CHECK}",
        f"add rule {T} filter-output ct state new jump {CLUSTER_IPS_CHECK}",
        f"add rule {T} {CLUSTER_IPS_CHECK} ip daddr @{CLUSTER_IPS} reject "
        f"comment {_quote('Reject traffic to invalid ports of ClusterIPs')}",
        f"add rule {T} {CLUSTER_IPS_CHECK} ip daddr {{ {svc_cidr} }} drop "
        f"comment {_quote('Drop traffic to unallocated ClusterIPs')}",
        f"add rule {T} {SERVICE_ENDPOINTS_CHECK} ip daddr . meta l4proto . th dport "
        f"vmap @{NO_ENDPOINT_SERVICES}",
        f"add rule {T} {REJECT_CHAIN} reject",
        # NAT, narrowed to lab traffic as the iptables mode's hooks are, so
        # the host's other traffic never enters the lab's chains.
        f"add rule {T} nat-prerouting iifname {LAB_IFACES} jump {SERVICES}",
        f"add rule {T} nat-output ip daddr {svc_cidr} jump {SERVICES}",
        f"add rule {T} nat-postrouting oifname {LAB_IFACES} jump {MASQUERADING}",
        f"add rule {T} {MARK_MASQ} mark set mark or {MASQ_MARK}",
        f"add rule {T} {MASQUERADING} mark and {MASQ_MARK} == 0 return",
        # Clear the bit so a packet that is re-evaluated is not masqueraded twice.
        f"add rule {T} {MASQUERADING} mark set mark xor {MASQ_MARK}",
        f"add rule {T} {MASQUERADING} masquerade fully-random",
        f"add rule {T} {SERVICES} ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}",
        # The lab's fences (CIP-FORWARD and CIP-INPUT in iptables mode).
        f"add rule {T} {LAB_FORWARD} ct state invalid drop",
        f"add rule {T} {LAB_FORWARD} iifname {LAB_IFACES} oifname != {LAB_IFACES} drop "
        + NEVER_LEAVES,
        f"add rule {T} {LAB_FORWARD} iifname != {LAB_IFACES} oifname {LAB_IFACES} drop "
        + NEVER_LEAVES,
    ]
    for cidr in (pod_cidr, svc_cidr):
        for side in ("saddr", "daddr"):
            lines.append(
                f"add rule {T} {LAB_FORWARD} ip {side} {cidr} oifname != {LAB_IFACES} drop "
                + NEVER_LEAVES
            )
    lines += [
        # The node interface only leads to the sink: nothing is forwarded there.
        f'add rule {T} {LAB_FORWARD} oifname "{NODE_IFACE}" drop',
        f"add rule {T} {LAB_INPUT} ct state established,related return",
        f"add rule {T} {LAB_INPUT} reject "
        f"comment {_quote('pods may not open connections to the host')}",
    ]


def local_chain(spr: ServicePortRules) -> str:
    """`local-HASH-ns/svc/tcp/port`: the chain of the node-local endpoints (Local policy)."""
    return f"local-{chain_base(spr)}"


def _no_endpoints(spr: ServicePortRules, key: str, has_any: bool) -> str:
    """The @no-endpoint-services element: reject when the Service has no endpoint at all,
    drop when it has some but none on this node (internalTrafficPolicy: Local)."""
    verdict = "drop" if has_any else f"goto {REJECT_CHAIN}"
    return (
        f"add element {T} {NO_ENDPOINT_SERVICES} {{ {key} comment {_quote(spr.port_name)}"
        f" : {verdict} }}"
    )


def _affinity_sets(
    spr: ServicePortRules, endpoints: Sequence[Endpoint], sets: list[str]
) -> list[str]:
    lines = []
    for ep in endpoints:
        name = affinity_set(spr, ep.ip, ep.port)
        sets.append(name)
        # Declared, never flushed: the entries outlive the sync, as kube-proxy's do.
        lines.append(
            f"add set {T} {name} {{ type ipv4_addr ; flags dynamic,timeout ;"
            f" timeout {spr.affinity_timeout}s ; }}"
        )
    return lines


def _endpoint_lines(spr: ServicePortRules, ep: Endpoint) -> list[str]:
    chain = endpoint_chain(spr, ep.ip, ep.port)
    # Hairpin: a pod balanced back to itself must get the reply from the Service's
    # address, so the node masquerades it.
    lines = [f"add rule {T} {chain} ip saddr {ep.ip} jump {MARK_MASQ}"]
    if spr.affinity_timeout is not None:
        lines.append(
            f"add rule {T} {chain} update @{affinity_set(spr, ep.ip, ep.port)} {{ ip saddr }}"
        )
    proto = spr.protocol.lower()
    lines.append(f"add rule {T} {chain} meta l4proto {proto} dnat to {ep.ip}:{ep.port}")
    return lines


def _service(spr: ServicePortRules, found: Categorized, lines: list[str], sets: list[str]) -> None:
    """One Service port: its chains, its affinity sets and its map elements.

    Its traffic goes to `service-…` (Cluster policy: every endpoint, or those the topology
    hints leave this node) or `local-…` (Local policy: this node's endpoints).
    """
    proto = spr.protocol.lower()
    key = f"{spr.cluster_ip} . {proto} . {spr.port}"
    lines.append(f"add element {T} {CLUSTER_IPS} {{ {spr.cluster_ip} }}")
    endpoints = found.policy(spr.internal_traffic_local)
    if not endpoints:
        lines.append(_no_endpoints(spr, key, found.has_any))
        return
    sticky = spr.affinity_timeout is not None
    if sticky:
        lines += _affinity_sets(spr, found.reachable, sets)
    # A chain must exist before a rule may jump to it.
    lines += [f"add chain {T} {endpoint_chain(spr, ep.ip, ep.port)}" for ep in found.reachable]
    svc = local_chain(spr) if spr.internal_traffic_local else service_chain(spr)
    lines += [
        f"add chain {T} {svc}",
        # Traffic from outside the pod network (the node itself) is masqueraded so the
        # pod's reply comes back through this node; matched by address and port, as
        # kube-proxy writes it (the map already matched both, the rule says so again).
        f"add rule {T} {svc} ip daddr {spr.cluster_ip} {proto} dport {spr.port}"
        f" ip saddr != {POD_CIDR} jump {MARK_MASQ}",
    ]
    if sticky:
        # A client seen recently goes back to the endpoint it was sent to.
        for ep in endpoints:
            lines.append(
                f"add rule {T} {svc} ip saddr @{affinity_set(spr, ep.ip, ep.port)}"
                f" goto {endpoint_chain(spr, ep.ip, ep.port)}"
            )
    picks = " , ".join(
        f"{i} : goto {endpoint_chain(spr, ep.ip, ep.port)}" for i, ep in enumerate(endpoints)
    )
    lines.append(f"add rule {T} {svc} numgen random mod {len(endpoints)} vmap {{ {picks} }}")
    for ep in found.reachable:
        lines += _endpoint_lines(spr, ep)
    lines.append(f"add element {T} {SERVICE_IPS} {{ {key} : goto {svc} }}")


def render(
    ports: Sequence[ServicePortRules],
    delete_chains: Iterable[str] = (),
    existing_sets: Iterable[str] = (),
    node: NodeTopology = DEFAULT_NODE,
) -> str:
    """One full sync as one `nft -f` transaction.

    `delete_chains`: Service and endpoint chains that an earlier sync already
    emptied and unhooked. As kube-proxy does, a chain is deleted only a sync
    after it went stale: before Linux 6.2 the kernel notices a little late
    that a map element no longer points at it, and refuses the delete.
    `existing_sets`: affinity sets in the kernel now; those no Service uses
    any more are deleted at once (nothing refers to them once the rules are
    rewritten).
    """
    lines = [
        f"add table {T} {{ comment {_quote('clusterip-demo lab: kube-proxy, nftables mode')} ; }}",
        # Every rule of every chain goes; sets keep their elements.
        f"flush table {T}",
    ]
    _base(lines)
    sets: list[str] = []
    for spr in sorted(ports, key=lambda p: (p.port_name, p.protocol)):
        _service(spr, categorize(spr, node), lines, sets)
    wanted = set(declared_chains("\n".join(lines)))
    lines += [f"delete chain {T} {c}" for c in sorted(set(delete_chains)) if c not in wanted]
    lines += [f"delete set {T} {s}" for s in sorted(set(existing_sets) - set(sets))]
    return "\n".join(lines) + "\n"


def cleanup_script() -> str:
    """Remove the lab's table and everything in it; no error if there is none."""
    return f"add table {T}\ndelete table {T}\n"


def declared_chains(script: str) -> list[str]:
    """The chains a script adds, in order."""
    prefix = f"add chain {T} "
    lines = script.splitlines()
    return [line[len(prefix) :].split()[0] for line in lines if line.startswith(prefix)]


def declared_sets(script: str) -> list[str]:
    """The affinity sets a script adds."""
    prefix = f"add set {T} "
    lines = script.splitlines()
    names = [line[len(prefix) :].split()[0] for line in lines if line.startswith(prefix)]
    return [n for n in names if n.startswith("affinity-")]


def is_service_chain(name: str) -> bool:
    """kube-proxy's test: only Service and endpoint chains have a "/" in their names."""
    return "/" in name


class NftablesMode:
    name = "nftables"
    # Nothing in iptables: the table's base chains hook into netfilter themselves.
    hooks: tuple[Hook, ...] = ()

    def __init__(self, nft_bin: str = "nft") -> None:
        self.nft_bin = nft_bin
        self.chains: set[str] = set()  # Service and endpoint chains in the kernel
        self.stale_since: dict[str, float] = {}
        self.sets: set[str] = set()  # affinity sets in the kernel

    def render(self, state: ProxyState, now: float) -> tuple[Apply, ...]:
        due = [c for c, since in self.stale_since.items() if now - since >= STALE_CHAIN_DELAY]
        script = render(state.ports, delete_chains=due, existing_sets=self.sets, node=state.node)
        return (Apply((self.nft_bin, "-f", "-"), script),)

    def applied(self, applies: Sequence[Apply], now: float) -> None:
        script = applies[0].text
        wanted = {c for c in declared_chains(script) if is_service_chain(c)}
        prefix = f"delete chain {T} "
        deleted = {line[len(prefix) :] for line in script.splitlines() if line.startswith(prefix)}
        stale = (self.chains | set(self.stale_since)) - wanted - deleted
        self.stale_since = {c: self.stale_since.get(c, now) for c in stale}
        self.chains = wanted | stale
        self.sets = set(declared_sets(script))

    def cleanup_script(self) -> tuple[Apply, ...]:
        return (Apply((self.nft_bin, "-f", "-"), cleanup_script()),)

    def rules_commands(self) -> tuple[tuple[str, ...], ...]:
        return ((self.nft_bin, "list", "table", FAMILY, TABLE),)


def _listed_nft_table() -> tuple[str, str] | None:
    """(nft's path, `nft list table` of the lab's table), or None: no nft, or no table."""
    nft = shutil.which("nft")
    if nft is None:
        return None
    listed = subprocess.run(
        [nft, "list", "table", FAMILY, TABLE],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return (nft, listed.stdout) if listed.returncode == 0 else None


def remove_nft_table() -> list[str]:
    """Delete the lab's nft table if there is one (whatever mode the last lab ran)."""
    found = _listed_nft_table()
    if found is None:
        return []
    run_apply(NftablesMode(found[0]).cleanup_script()[0])
    return [f"nft table {T}"]


def nft_leftovers() -> list[str]:
    """The lab's nft table, if it exists: one line per chain, set and map."""
    found = _listed_nft_table()
    if found is None:
        return []
    return [
        f"{T}: {line.strip().rstrip('{').strip()}"
        for line in found[1].splitlines()
        if line.strip().startswith(("table ", "chain ", "set ", "map "))
    ] or [f"table {T}"]
