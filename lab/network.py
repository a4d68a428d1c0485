"""The node's network: pod namespaces, veth pairs, routes, hosts/resolv.conf, and cleanup.

Topology (the CNI `ptp` plugin's, on one node):

    host ("the node")                          pod network namespace cip-<pod>
    cip<hash> 10.244.1.1/32  <── veth ──>      eth0 10.244.1.N/32
    route 10.244.1.N/32 dev cip<hash>          route 10.244.1.1 dev eth0 (link)
                                               routes 10.244.0.0/16, 10.96.0.0/12
                                                   via 10.244.1.1 — and nothing else

Pods have no default route: an address outside the lab's two ranges is
unreachable from inside a pod. On the host, `unreachable` routes cover both
ranges, so only the /32 routes the lab adds lead anywhere, and forwarding is
switched on per lab interface only (net.ipv4.conf.<iface>.forwarding); the
global net.ipv4.ip_forward is never changed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lab.dns import resolv_conf
from lab.naming import (
    IFACE_PREFIX,
    LAB_ROUTE_PROTO,
    NETNS_PREFIX,
    NODE_GATEWAY,
    NODE_IFACE,
    NODE_NETWORK,
    POD_CIDR,
    SERVICE_CIDR,
    SINK_NETNS,
    WORKDIR_PREFIX,
    host_iface,
    netns_name,
)

ETC_NETNS = Path("/etc/netns")
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


class NetworkError(RuntimeError):
    pass


def ip_binary() -> str:
    found = shutil.which("ip")
    if found is None:
        raise NetworkError("`ip` is not installed (apt-get install iproute2)")
    return found


def run_ip(*args: str, batch: Iterable[str] | None = None, check: bool = True) -> str:
    cmd = [ip_binary(), *args]
    text = None
    if batch is not None:
        cmd += ["-batch", "-"]
        text = "\n".join(batch) + "\n"
    done = subprocess.run(cmd, input=text, capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)} failed: {done.stderr.strip()}\n{text or ''}")
    return done.stdout


def lab_netns() -> list[str]:
    out = run_ip("-json", "netns", "list", check=False).strip()
    names = [n["name"] for n in json.loads(out)] if out else []
    return [n for n in names if n.startswith(NETNS_PREFIX)]


def lab_links() -> list[str]:
    out = run_ip("-json", "link", "show", check=False).strip()
    links = json.loads(out) if out else []
    return [link["ifname"] for link in links if link["ifname"].startswith(IFACE_PREFIX)]


def lab_routes() -> list[str]:
    """Routes the lab added (its protocol number), and any route into its ranges."""
    found = run_ip("route", "show", "proto", str(LAB_ROUTE_PROTO), check=False).splitlines()
    for cidr in (POD_CIDR, SERVICE_CIDR):
        found += run_ip("route", "show", "root", str(cidr), check=False).splitlines()
    return sorted(set(line.strip() for line in found if line.strip()))


def foreign_routes() -> tuple[list[str], list[str]]:
    """Routes the lab did not add: (inside its ranges, covering its ranges).

    A route inside a range (a real cluster's pod route, say) is a conflict. A
    route covering one (a VPN's 10.0.0.0/8) is shadowed by the lab's more
    specific routes while it runs: worth a warning, not a refusal.
    """
    ours = set(run_ip("route", "show", "proto", str(LAB_ROUTE_PROTO), check=False).splitlines())
    inside: list[str] = []
    covering: list[str] = []
    for cidr in (POD_CIDR, SERVICE_CIDR):
        for line in run_ip("route", "show", "root", str(cidr), check=False).splitlines():
            if line not in ours:
                inside.append(line.strip())
        for line in run_ip("route", "show", "match", str(cidr), check=False).splitlines():
            first = line.split()[0] if line.split() else ""
            if line not in ours and not line.startswith("default") and first != str(cidr):
                covering.append(line.strip())
    return sorted(set(inside)), sorted(set(covering))


def _write_sysctl(path: Path, value: str) -> None:
    path.write_text(value + "\n")


@dataclass(frozen=True)
class PodNetwork:
    pod: str
    ip: str
    netns: str
    host_iface: str


def _hosts_file(pod: str, ip: str, hostname_aliases: list[str]) -> str:
    """The kubelet-managed /etc/hosts: localhost and the pod's own names, nothing else.

    Service names are not here: the cluster DNS answers them (lab/dns.py).
    """
    lines = [
        "# Kubernetes-managed hosts file, written by the clusterip-demo lab.",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        f"{ip}\t{' '.join([*hostname_aliases, pod])}",
    ]
    return "\n".join(lines) + "\n"


def add_unreachable_routes() -> list[str]:
    """Returns warnings: routes of the host that the lab's will shadow while it runs."""
    inside, covering = foreign_routes()
    if inside:
        raise NetworkError(
            "the host already routes part of the lab's ranges "
            f"({POD_CIDR}, {SERVICE_CIDR}); refusing to start:\n  " + "\n  ".join(inside)
        )
    proto = str(LAB_ROUTE_PROTO)
    # First thing the lab does: from here on, no packet for the lab's
    # ranges can follow the default route off the machine.
    run_ip(
        batch=[
            f"route add unreachable {POD_CIDR} proto {proto}",
            f"route add unreachable {SERVICE_CIDR} proto {proto}",
        ]
    )
    return [
        f"while the lab runs, {POD_CIDR} and {SERVICE_CIDR} no longer follow: {route}"
        for route in covering
    ]


def ensure_etc_netns() -> bool:
    """/etc/netns, where `ip netns exec` finds a pod's hosts and resolv.conf; True when
    the lab created it (and so removes it)."""
    if ETC_NETNS.exists():
        return False
    ETC_NETNS.mkdir(mode=0o755)
    return True


class HostNetwork:
    """Sets up and tears down what a node's pods add to its network.

    The node is the host (node_netns None: the one-node lab, which also owns the
    host's safety routes and the node interface) or a node's namespace of a lab with
    several (lab/nodenet.py made it, with forwarding on for the whole namespace).
    """

    def __init__(
        self,
        namespace: str,
        gateway: ipaddress.IPv4Address = NODE_GATEWAY,
        node_netns: str | None = None,
    ) -> None:
        self.namespace = namespace
        self.gateway = gateway
        self.node_netns = node_netns

    def _on_node(self, *args: str, batch: Iterable[str] | None = None, check: bool = True) -> str:
        where = ("-n", self.node_netns) if self.node_netns else ()
        return run_ip(*where, *args, batch=batch, check=check)

    # -- the node ------------------------------------------------------------

    def create_node_iface(self) -> None:
        run_ip("netns", "add", SINK_NETNS)
        run_ip(
            batch=[
                f"link add {NODE_IFACE} type veth peer name sink0 netns {SINK_NETNS}",
                f"link set {NODE_IFACE} addrgenmode none",
                f"addr add {NODE_GATEWAY}/32 dev {NODE_IFACE}",
                f"link set {NODE_IFACE} up",
            ]
        )
        run_ip("-n", SINK_NETNS, batch=["link set sink0 addrgenmode none", "link set sink0 up"])

    def add_service_ip(self, cluster_ip: str) -> None:
        # The host's own connections to a ClusterIP (the port-forward, the
        # tests) need a route before OUTPUT's DNAT can send them to a pod.
        run_ip(
            "route",
            "add",
            f"{cluster_ip}/32",
            "dev",
            NODE_IFACE,
            "src",
            str(NODE_GATEWAY),
            "proto",
            str(LAB_ROUTE_PROTO),
        )

    # -- pods ----------------------------------------------------------------

    def add_pod(
        self,
        pod: str,
        ip: str,
        services: dict[str, str] | None = None,
        hostname_aliases: list[str] | None = None,
        namespace: str | None = None,
        sandbox_pid: int | None = None,
    ) -> PodNetwork:
        """The pod's namespace, veth, address and routes, and its hosts and resolv.conf.

        `services` is no longer used (names come from the cluster DNS); it stays
        so the kubelet's call keeps its shape. `namespace` is the pod's, for the
        search path; the app's namespace when not given. With `sandbox_pid`, the
        namespace is the one a sandbox container holds (the engine made it): it is
        named for `ip netns` instead of created.
        """
        address = ipaddress.ip_address(ip)
        if address not in POD_CIDR:
            raise NetworkError(f"{ip} is outside the pod range {POD_CIDR}")
        ns = netns_name(pod)
        iface = host_iface(pod)
        gateway = self.gateway
        etc = ETC_NETNS / ns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text(_hosts_file(pod, ip, hostname_aliases or []))
        # `ip netns exec` bind-mounts these over /etc/hosts and /etc/resolv.conf.
        (etc / "resolv.conf").write_text(resolv_conf(namespace or self.namespace))
        proto = str(LAB_ROUTE_PROTO)
        if sandbox_pid is None:
            run_ip("netns", "add", ns)
        else:
            run_ip("netns", "attach", ns, str(sandbox_pid))
        self._on_node(
            batch=[
                f"link add {iface} type veth peer name eth0 netns {ns}",
                f"link set {iface} addrgenmode none",
                f"addr add {gateway}/32 dev {iface}",
                f"link set {iface} up",
                f"route add {ip}/32 dev {iface} scope link src {gateway} proto {proto}",
            ]
        )
        if self.node_netns is None:
            # Forwarding for this interface only: packets that arrive on it may be
            # routed; the host's global ip_forward stays as it was.
            _write_sysctl(Path(f"/proc/sys/net/ipv4/conf/{iface}/forwarding"), "1")
        run_ip(
            "-n",
            ns,
            batch=[
                "link set lo up",
                "link set eth0 addrgenmode none",
                f"addr add {ip}/32 dev eth0",
                "link set eth0 up",
                f"route add {gateway}/32 dev eth0 scope link",
                f"route add {POD_CIDR} via {gateway} dev eth0 src {ip}",
                f"route add {SERVICE_CIDR} via {gateway} dev eth0 src {ip}",
                # Of several nodes: the nodes' network, where probes and masqueraded
                # connections come from, is reachable too (and nothing else).
                *(
                    [f"route add {NODE_NETWORK} via {gateway} dev eth0 src {ip}"]
                    if self.node_netns
                    else []
                ),
            ],
        )
        return PodNetwork(pod=pod, ip=ip, netns=ns, host_iface=iface)

    def remove_pod(self, net: PodNetwork) -> None:
        kill_netns_processes(net.netns)
        self._on_node("link", "del", net.host_iface, check=False)
        run_ip("netns", "del", net.netns, check=False)
        shutil.rmtree(ETC_NETNS / net.netns, ignore_errors=True)


def netns_pids(ns: str) -> list[int]:
    out = run_ip("netns", "pids", ns, check=False)
    return [int(p) for p in out.split() if p.isdigit()]


def kill_netns_processes(ns: str, timeout: float = 5.0) -> None:
    """SIGKILL whatever still runs in one of the lab's namespaces (only ever a cip- one)."""
    if not ns.startswith(NETNS_PREFIX):
        raise ValueError(f"refusing to kill processes in {ns!r}: not a lab namespace")
    deadline = time.monotonic() + timeout
    while True:
        pids = netns_pids(ns)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise NetworkError(f"processes {pids} in {ns} survived SIGKILL")
        time.sleep(0.05)


def leftovers(workdir_root: Path = Path("/tmp")) -> dict[str, list[str]]:
    """Everything of the lab's that exists now. Empty lists mean nothing is left."""
    from lab.cni import applier as cni
    from lab.cni.rules import is_cni_line
    from lab.faults import fault_leftovers
    from lab.iptables import Iptables
    from lab.kubeproxy.nftables import nft_leftovers

    tables: list[str] = []
    ipt = Iptables()
    for table in ("nat", "filter", "mangle", "raw"):
        for line in ipt.rules(table):
            if "CIP-" in line and not (table == "filter" and is_cni_line(line)):
                tables.append(f"{table}: {line}")
    etc = sorted(str(p) for p in ETC_NETNS.glob(f"{NETNS_PREFIX}*")) if ETC_NETNS.exists() else []
    return {
        "netns": lab_netns(),
        "links": lab_links(),
        "routes": lab_routes(),
        "iptables": tables,
        "cni": cni.leftovers(ipt),
        "nftables": nft_leftovers(),
        "faults": fault_leftovers(),
        "etc_netns": etc,
        "workdirs": sorted(str(p) for p in workdir_root.glob(f"{WORKDIR_PREFIX}*")),
        "containers": _lab_containers(),
    }


def _lab_containers() -> list[str]:
    from lab.engine import detect
    from lab.images import LABEL
    from lab.manifests import REPO

    engine = detect(REPO)
    return engine.labelled(LABEL) if engine is not None else []


def _remove_lab_containers() -> list[str]:
    from lab.engine import detect
    from lab.images import ImageRuntime
    from lab.manifests import REPO

    engine = detect(REPO)
    return ImageRuntime(engine).remove_all() if engine is not None else []


def cleanup(etc_netns_created: bool = False, workdirs: Iterable[Path] = ()) -> list[str]:
    """Remove every trace of a lab, running or crashed. Returns what was removed.

    Only the lab's own names are touched: cip- namespaces (and the processes
    inside them, which only the lab starts), cip interfaces, routes with the
    lab's protocol number, CIP- chains and the jumps to them, /etc/netns/cip-*.
    """
    from lab.cni import applier as cni
    from lab.faults import heal_all
    from lab.iptables import Iptables
    from lab.kubeproxy.nftables import remove_nft_table

    removed: list[str] = []
    # Network faults first: their delayers hold packets of pods about to go.
    removed += heal_all()
    # Containers first: a sandbox holds a pod's namespace, and an engine would
    # restart nothing, but its CLI must not outlive the lab either.
    removed += [f"container {name}" for name in _remove_lab_containers()]
    for ns in lab_netns():
        kill_netns_processes(ns)
    for link in lab_links():
        run_ip("link", "del", link, check=False)
        removed.append(f"link {link}")
    for ns in lab_netns():
        run_ip("netns", "del", ns, check=False)
        removed.append(f"netns {ns}")
    for route in run_ip("route", "show", "proto", str(LAB_ROUTE_PROTO), check=False).splitlines():
        removed.append(f"route {route.strip()}")
    run_ip("route", "flush", "proto", str(LAB_ROUTE_PROTO), check=False)
    # `flush` skips unreachable routes on some iproute2 versions: delete those by name.
    for cidr in (POD_CIDR, SERVICE_CIDR):
        for line in run_ip("route", "show", "exact", str(cidr), check=False).splitlines():
            if line.startswith("unreachable") and f"proto {LAB_ROUTE_PROTO}" in line:
                run_ip("route", "del", "unreachable", str(cidr), check=False)
    ipt = Iptables()
    # Each component's own first, then every CIP- chain left (a crashed lab's, a fault's).
    removed += cni.remove(ipt)
    removed += ipt.remove_lab_rules()
    removed += remove_nft_table()
    if ETC_NETNS.exists():
        for path in ETC_NETNS.glob(f"{NETNS_PREFIX}*"):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(f"file {path}")
        if etc_netns_created and not any(ETC_NETNS.iterdir()):
            ETC_NETNS.rmdir()
            removed.append(f"dir {ETC_NETNS}")
    for workdir in workdirs:
        if workdir.name.startswith(WORKDIR_PREFIX) and workdir.exists():
            shutil.rmtree(workdir, ignore_errors=True)
            removed.append(f"dir {workdir}")
    # Deleting a namespace frees its veth asynchronously: wait for the kernel.
    deadline = time.monotonic() + 10
    while (lab_links() or lab_netns()) and time.monotonic() < deadline:
        for link in lab_links():
            run_ip("link", "del", link, check=False)
        time.sleep(0.05)
    return removed
