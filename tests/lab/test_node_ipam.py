"""host-local IPAM for the node's pods: lab/node/ipam.py. Root-free."""

from __future__ import annotations

import ipaddress

import pytest

from lab.naming import NODE_GATEWAY, NODE_POD_CIDR
from lab.node.ipam import HostLocal


def test_addresses_start_after_the_gateway_in_the_nodes_pod_cidr() -> None:
    ipam = HostLocal()
    first, second = ipam.allocate(), ipam.allocate()
    assert ipaddress.ip_address(first) == NODE_GATEWAY + 1
    assert ipaddress.ip_address(second) == NODE_GATEWAY + 2
    assert all(ipaddress.ip_address(ip) in NODE_POD_CIDR for ip in (first, second))
    assert ipam.in_use == {first, second}


def test_a_released_address_is_not_handed_out_again_at_once() -> None:
    ipam = HostLocal()
    first = ipam.allocate()
    ipam.release(first)
    # A replacement pod gets the next address: a stale conntrack entry cannot reach it.
    assert ipam.allocate() != first
    assert first not in ipam.in_use


def test_it_wraps_around_skipping_network_gateway_and_broadcast_and_what_is_in_use() -> None:
    small = ipaddress.ip_network("10.244.1.0/29")  # .0 network, .1 gateway, .7 broadcast
    ipam = HostLocal(small)
    given = [ipam.allocate() for _ in range(5)]
    assert given == [f"10.244.1.{n}" for n in (2, 3, 4, 5, 6)]
    with pytest.raises(RuntimeError, match=r"no free pod IP left in 10\.244\.1\.0/29"):
        ipam.allocate()
    ipam.release("10.244.1.4")
    ipam.release("10.244.1.3")
    # After the last one given (.6) the search wraps to the start: .3 before .4.
    assert ipam.allocate() == "10.244.1.3"
    assert ipam.allocate() == "10.244.1.4"


def test_releasing_an_address_not_in_use_changes_nothing() -> None:
    ipam = HostLocal()
    ip = ipam.allocate()
    ipam.release("10.244.1.200")
    assert ipam.in_use == {ip}
