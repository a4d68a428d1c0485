"""The nodes' network of a lab with several (lab/nodenet.py, lab/node/place.py): the
commands each node and the host get, without root."""

from __future__ import annotations

import ipaddress

import pytest

from lab.naming import HOST_UPLINK, NODE_UPLINK, POD_CIDR, SERVICE_CIDR
from lab.node.place import find_place, places
from lab.nodenet import NodeNetwork, host_commands, node_commands


def test_one_node_is_the_host_and_keeps_the_one_node_labs_addresses() -> None:
    (node,) = places(1)
    assert (node.name, node.netns, node.address) == ("lab-node-1", None, "10.244.1.1")
    assert str(node.pod_cidr) == "10.244.1.0/24"


def test_three_nodes_each_a_namespace_a_pod_cidr_and_an_address_on_the_nodes_network() -> None:
    nodes = places(3)
    assert [n.netns for n in nodes] == ["cip-lab-node-1", "cip-lab-node-2", "cip-lab-node-3"]
    assert [n.address for n in nodes] == ["10.250.0.2", "10.250.0.3", "10.250.0.4"]
    assert [n.zone for n in nodes] == ["lab-zone-a", "lab-zone-b", "lab-zone-a"]
    cidrs = [n.pod_cidr for n in nodes]
    assert all(c.subnet_of(POD_CIDR) for c in cidrs)  # type: ignore[arg-type]
    assert len({str(c) for c in cidrs}) == 3
    assert all(ipaddress.ip_address(n.address) not in POD_CIDR for n in nodes)
    with pytest.raises(ValueError):
        places(0)


def test_each_node_routes_the_others_pod_cidrs_to_their_addresses_and_nothing_else() -> None:
    nodes = places(3)
    lines = node_commands(nodes[1], nodes)
    assert f"addr add 10.250.0.3/24 dev {NODE_UPLINK}" in lines
    routes = [line for line in lines if line.startswith("route add")]
    assert routes == [
        f"route add {SERVICE_CIDR} dev {NODE_UPLINK} proto 157",
        f"route add 10.244.1.0/24 via 10.250.0.2 dev {NODE_UPLINK} proto 157",
        f"route add 10.244.3.0/24 via 10.250.0.4 dev {NODE_UPLINK} proto 157",
    ]
    assert not any("default" in line for line in lines)


def test_the_host_routes_every_pod_cidr_to_its_node() -> None:
    lines = host_commands(places(3))
    assert f"addr add 10.250.0.1/24 dev {HOST_UPLINK}" in lines
    assert [line for line in lines if line.startswith("route")] == [
        f"route add 10.244.{i}.0/24 via 10.250.0.{i + 1} dev {HOST_UPLINK} proto 157"
        for i in (1, 2, 3)
    ]


def test_a_node_is_found_by_name_or_number_and_an_unknown_one_is_named() -> None:
    nodes = places(3)
    assert find_place(nodes, "2").name == "lab-node-2"
    assert find_place(nodes, "lab-node-3").index == 3
    with pytest.raises(KeyError, match="lab-node-1, lab-node-2, lab-node-3"):
        find_place(nodes, "lab-node-9")
    with pytest.raises(ValueError):
        NodeNetwork(places(1))
