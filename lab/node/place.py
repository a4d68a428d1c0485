"""Where one node's components act: its name, zone, pod CIDR, addresses and namespace.

The one-node lab's node is the host itself (netns None), as before; in a lab with
several, node i is the network namespace cip-lab-node-<i> on the nodes' switch
(lab/nodenet.py), and its kubelet, kube-proxy and CNI write into that namespace.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from lab.naming import internal_ip, node_gateway, node_name, node_netns, node_pod_cidr, zone_of


@dataclass(frozen=True)
class NodePlace:
    index: int
    name: str
    zone: str
    pod_cidr: ipaddress.IPv4Network
    # The node's address on its pods' links: the pods' gateway.
    gateway: ipaddress.IPv4Address
    # Its InternalIP: the gateway when the host is the node, its address on the
    # nodes' network otherwise (what a masqueraded packet leaving it carries).
    address: str
    netns: str | None


def places(count: int) -> list[NodePlace]:
    if count < 1:
        raise ValueError(f"a lab has at least one node, not {count}")
    return [
        NodePlace(
            index=i,
            name=node_name(i),
            zone=zone_of(i),
            pod_cidr=node_pod_cidr(i),
            gateway=node_gateway(i),
            address=internal_ip(i, count),
            netns=None if count == 1 else node_netns(i),
        )
        for i in range(1, count + 1)
    ]


def find_place(nodes: Sequence[NodePlace], name: str) -> NodePlace:
    """A node by its name (lab-node-2) or its number (2), as `lab node` and `lab rules
    --node` take it; a KeyError naming the nodes there are otherwise."""
    for place in nodes:
        if name in (place.name, str(place.index)):
            return place
    raise KeyError(f"no node {name!r} (nodes: {', '.join(n.name for n in nodes)})")
