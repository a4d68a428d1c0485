"""The nodes' network of a lab with several nodes: a namespace per node, a switch, routes.

    host (not a node)            cip-switch               cip-lab-node-i
    cipnodes 10.250.0.1/24 ── host ┐                  ┌ n<i> ── cipuplink 10.250.0.(i+1)/24
                                   └──── br0 (bridge) ┘        cip<hash> 10.244.i.1/32 ── pod
    10.244.i.0/24 via node i                                   10.244.j.0/24 via node j
    each ClusterIP/32 via node 1                               10.96.0.0/12 dev cipuplink

As a simple routed CNI (flannel's host-gw, kindnet) does: a node routes each other
node's pod CIDR to that node's address, so a packet between pods of two nodes
crosses the nodes' network with the pods' own addresses. Each node forwards (its
own namespace's ip_forward; the host's stays as it was). The host reaches the pods
the same way and the ClusterIPs through node 1, as a machine on the nodes' network
would: its connections are masqueraded by node 1's kube-proxy rules.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from lab.naming import (
    HOST_ON_NODE_NETWORK,
    HOST_UPLINK,
    LAB_ROUTE_PROTO,
    NODE_NETWORK,
    NODE_UPLINK,
    SERVICE_CIDR,
    SWITCH_NETNS,
)
from lab.network import NetworkError, ip_binary, run_ip
from lab.node.place import NodePlace

BRIDGE = "br0"


def switch_port(place: NodePlace) -> str:
    return f"n{place.index}"


def _sysctl(netns: str, setting: str) -> None:
    done = subprocess.run(
        [ip_binary(), "netns", "exec", netns, "sysctl", "-qw", setting],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        raise NetworkError(f"sysctl {setting} in {netns}: {done.stderr.strip()}")


def node_commands(place: NodePlace, nodes: Sequence[NodePlace]) -> list[str]:
    """`ip -batch` lines inside node `place`'s namespace (pure: tested without root)."""
    prefix = NODE_NETWORK.prefixlen
    lines = [
        "link set lo up",
        f"link set {NODE_UPLINK} addrgenmode none",
        f"addr add {place.address}/{prefix} dev {NODE_UPLINK}",
        f"link set {NODE_UPLINK} up",
        # The node's own connections to a ClusterIP need a route before OUTPUT's DNAT.
        f"route add {SERVICE_CIDR} dev {NODE_UPLINK} proto {LAB_ROUTE_PROTO}",
    ]
    lines += [
        f"route add {other.pod_cidr} via {other.address} dev {NODE_UPLINK} proto {LAB_ROUTE_PROTO}"
        for other in nodes
        if other.index != place.index
    ]
    return lines


def host_commands(nodes: Sequence[NodePlace]) -> list[str]:
    """`ip -batch` lines in the host's namespace: its link to the switch, routes to pods."""
    return [
        f"link set {HOST_UPLINK} addrgenmode none",
        f"addr add {HOST_ON_NODE_NETWORK}/{NODE_NETWORK.prefixlen} dev {HOST_UPLINK}",
        f"link set {HOST_UPLINK} up",
        *(
            f"route add {n.pod_cidr} via {n.address} dev {HOST_UPLINK} proto {LAB_ROUTE_PROTO}"
            for n in nodes
        ),
    ]


class NodeNetwork:
    """Creates the switch and the nodes; `lab node stop|start` takes a node's link down/up."""

    def __init__(self, nodes: Sequence[NodePlace]) -> None:
        if any(n.netns is None for n in nodes):
            raise ValueError("every node of a lab with several has a namespace of its own")
        self.nodes = list(nodes)

    def create(self) -> None:
        run_ip("netns", "add", SWITCH_NETNS)
        run_ip(
            "-n",
            SWITCH_NETNS,
            batch=[
                "link set lo up",
                f"link add {BRIDGE} type bridge",
                f"link set {BRIDGE} addrgenmode none",
                f"link set {BRIDGE} up",
            ],
        )
        run_ip(*f"link add {HOST_UPLINK} type veth peer name host netns {SWITCH_NETNS}".split())
        self._attach("host")
        for place in self.nodes:
            self._add_node(place)
        run_ip(batch=host_commands(self.nodes))

    def _attach(self, port: str) -> None:
        run_ip(
            "-n",
            SWITCH_NETNS,
            batch=[
                f"link set {port} addrgenmode none",
                f"link set {port} master {BRIDGE}",
                f"link set {port} up",
            ],
        )

    def _add_node(self, place: NodePlace) -> None:
        assert place.netns is not None
        run_ip("netns", "add", place.netns)
        port = switch_port(place)
        run_ip(
            "-n",
            SWITCH_NETNS,
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            NODE_UPLINK,
            "netns",
            place.netns,
        )
        self._attach(port)
        run_ip("-n", place.netns, batch=node_commands(place, self.nodes))
        # The node routes for its pods: forwarding on in its own namespace only.
        _sysctl(place.netns, "net.ipv4.ip_forward=1")

    def add_service_ip(self, cluster_ip: str) -> None:
        """The host's own connections to a ClusterIP go through node 1."""
        first = self.nodes[0]
        run_ip(
            "route",
            "add",
            f"{cluster_ip}/32",
            "via",
            first.address,
            "dev",
            HOST_UPLINK,
            "proto",
            str(LAB_ROUTE_PROTO),
        )

    def set_link(self, place: NodePlace, up: bool) -> None:
        """A node's cable: down, nothing reaches it or leaves it; its pods keep running."""
        run_ip("-n", SWITCH_NETNS, "link", "set", switch_port(place), "up" if up else "down")
