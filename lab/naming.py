"""Every name and address the lab owns, in one place.

Cleanup finds the lab's leftovers by these prefixes alone, so nothing the lab
creates may be named otherwise, and nothing else on the machine should use
them: network namespaces `cip-…`, host interfaces `cip…`, iptables chains
`CIP-…`, routes with protocol number LAB_ROUTE_PROTO, /etc/netns/cip-…,
work directories /tmp/cip-lab-….
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import re

NETNS_PREFIX = "cip-"
IFACE_PREFIX = "cip"
# `cip+` is how iptables spells "any interface whose name starts with cip".
IFACE_WILDCARD = "cip+"
CHAIN_PREFIX = "CIP-"
WORKDIR_PREFIX = "cip-lab-"
# A route protocol number no routing daemon uses, so `ip route flush proto 157`
# removes exactly the lab's routes and nothing else.
LAB_ROUTE_PROTO = 157
STATE_DIR = "/run/cip-lab"

# The cluster's pod network and service network, as kubeadm defaults them.
POD_CIDR = ipaddress.ip_network("10.244.0.0/16")
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
# The one node's share of the pod network; .1 is the node's own address on it
# (held by the node interface and by the host side of every pod veth, as the
# CNI ptp plugin does), pods get .2 upwards.
NODE_POD_CIDR = ipaddress.ip_network("10.244.1.0/24")
NODE_GATEWAY = ipaddress.ip_address("10.244.1.1")
NODE_NAME = "lab-node-1"
# The node interface: host side of a veth whose peer sits alone in SINK_NETNS.
# Service IPs are routed to it so that the host's own connections to a
# ClusterIP have a route; DNAT in OUTPUT then sends them to a pod instead.
NODE_IFACE = "cip0"
SINK_NETNS = "cip-node-sink"

# kube-proxy's masquerade mark bit.
MASQ_MARK = "0x4000"

_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def netns_name(pod_name: str) -> str:
    return f"{NETNS_PREFIX}{pod_name}"


def host_iface(pod_name: str) -> str:
    # Interface names are at most 15 bytes; a hash keeps them unique and short.
    digest = hashlib.sha256(pod_name.encode()).hexdigest()[:10]
    return f"{IFACE_PREFIX}{digest}"


def template_hash(text: str) -> str:
    """A pod-template-hash: short, from the safe alphabet, stable for one template."""
    number = int(hashlib.sha256(text.encode()).hexdigest()[:16], 16)
    chars = []
    for _ in range(10):
        number, rest = divmod(number, len(_SUFFIX_ALPHABET))
        chars.append(_SUFFIX_ALPHABET[rest])
    return "".join(chars)


def random_suffix(rng: random.Random, length: int = 5) -> str:
    return "".join(rng.choice(_SUFFIX_ALPHABET) for _ in range(length))


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def check_dns_label(name: str) -> str:
    if len(name) > 63 or not _DNS_LABEL.match(name):
        raise ValueError(f"{name!r} is not a valid DNS label")
    return name


def service_ip(namespace: str, name: str, taken: set[str]) -> str:
    """A ClusterIP for a Service that has none in its manifest.

    Kubernetes picks one at random; the lab derives it from the name, so the
    backend's ClusterIP is the same on every run and in the docs' examples.
    The first 16 addresses are left alone (10.96.0.1 is `kubernetes`,
    10.96.0.10 is the DNS Service in a kubeadm cluster).
    """
    size = SERVICE_CIDR.num_addresses
    start = int(hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:8], 16)
    for step in range(size):
        offset = (start + step) % size
        if offset < 16 or offset == size - 1 or offset % 256 in (0, 255):
            continue
        candidate = str(SERVICE_CIDR.network_address + offset)
        if candidate not in taken:
            return candidate
    raise RuntimeError("the service range is full")


# Node i (1-based) of a lab with several: the node IPAM controller's slice i of POD_CIDR,
# so node 1 keeps NODE_POD_CIDR and NODE_GATEWAY, and its name NODE_NAME.
def node_name(index: int) -> str:
    return f"lab-node-{index}"


def node_pod_cidr(index: int) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(f"10.244.{index}.0/24")


def node_gateway(index: int) -> ipaddress.IPv4Address:
    return node_pod_cidr(index).network_address + 1


# A lab with several nodes: each node is a network namespace, and the nodes share a
# switch (a bridge in a namespace of its own, so the host's bridge netfilter and FORWARD
# policy never see node traffic). Node i's InternalIP is NODE_NETWORK's .(i+1); the host
# is .1 on it: the kubelets' probes and the lab's port-forward come from there, as from
# a machine on the nodes' network. The host itself is not a node then.
NODE_NETWORK = ipaddress.ip_network("10.250.0.0/24")
# Each node one /24 of POD_CIDR and one address of NODE_NETWORK; five is plenty on 2 cores.
MAX_NODES = 5
HOST_ON_NODE_NETWORK = ipaddress.ip_address("10.250.0.1")
SWITCH_NETNS = "cip-switch"
# Both names start with IFACE_PREFIX: a node's uplink is lab traffic for the fences
# kube-proxy and the CNI write in the node, and the host's end is found by cleanup.
NODE_UPLINK = "cipuplink"
HOST_UPLINK = "cipnodes"


def node_ip(index: int) -> ipaddress.IPv4Address:
    return HOST_ON_NODE_NETWORK + index


def node_netns(index: int) -> str:
    return f"{NETNS_PREFIX}{node_name(index)}"


# Two zones, nodes alternating (zone a: 1 and 3, zone b: 2): with three nodes the zones
# are unequal, so a zone spread constraint and PreferSameZone show something a hostname
# spread does not, and losing one node never empties a zone of two.
ZONES = ("lab-zone-a", "lab-zone-b")
ZONE_LABEL = "topology.kubernetes.io/zone"


def zone_of(index: int) -> str:
    return ZONES[(index - 1) % len(ZONES)]


def internal_ip(index: int, nodes: int) -> str:
    """The one node is the host (its address on its pods' links); of several, each has
    its address on the nodes' network (NODE_NETWORK)."""
    return str(node_gateway(index) if nodes == 1 else node_ip(index))
