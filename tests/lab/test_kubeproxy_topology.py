"""Which endpoints one node's kube-proxy uses (lab/kubeproxy/topology.py): pure, root-free.

Each rule of pkg/proxy/topology.go's CategorizeEndpoints, with its fallbacks, for a
ClusterIP Service seen from nodes in two zones.
"""

from __future__ import annotations

from lab.kubeproxy.model import Endpoint, NodeTopology, ServicePortRules
from lab.kubeproxy.topology import (
    PREFER_SAME_NODE,
    PREFER_SAME_ZONE,
    categorize,
    picked,
    topology_mode,
)

NODE_1 = NodeTopology("lab-node-1", "lab-zone-a")
NODE_2 = NodeTopology("lab-node-2", "lab-zone-b")
NODE_3 = NodeTopology("lab-node-3", "lab-zone-a")
ZONES = {"lab-node-1": "lab-zone-a", "lab-node-2": "lab-zone-b", "lab-node-3": "lab-zone-a"}


def _ep(
    ip: str,
    node: str,
    hints: str = "",
    ready: bool = True,
    serving: bool = True,
    terminating: bool = False,
) -> Endpoint:
    """An endpoint on `node`, with hints: "zone", "node" (node and zone), or none."""
    zone = ZONES[node]
    return Endpoint(
        ip,
        8000,
        f"pod-{ip}",
        ready,
        serving,
        terminating,
        node_name=node,
        zone=zone,
        hints_zones=(zone,) if hints in ("zone", "node") else (),
        hints_nodes=(node,) if hints == "node" else (),
    )


def _spr(*eps: Endpoint, local: bool = False) -> ServicePortRules:
    return ServicePortRules(
        "ns/backend:http", "10.96.0.20", 8000, "TCP", tuple(eps), internal_traffic_local=local
    )


def _ips(endpoints: tuple[Endpoint, ...]) -> list[str]:
    return [e.ip for e in endpoints]


# --- Cluster policy, no hints -------------------------------------------------------------


def test_no_endpoints_at_all() -> None:
    found = categorize(_spr(), NODE_1)
    assert (found.cluster, found.local, found.reachable, found.has_any) == ((), (), (), False)


def test_without_hints_every_node_uses_every_ready_endpoint() -> None:
    spr = _spr(_ep("10.244.1.2", "lab-node-1"), _ep("10.244.2.2", "lab-node-2"))
    for node in (NODE_1, NODE_2, NODE_3):
        found = categorize(spr, node)
        assert _ips(found.cluster) == ["10.244.1.2", "10.244.2.2"]
        assert found.reachable == found.cluster and found.local == ()
        assert found.has_any and found.mode == ""


def test_not_ready_endpoints_are_left_out_then_serving_terminating_ones_are_the_fallback() -> None:
    spr = _spr(
        _ep("10.244.1.2", "lab-node-1"),
        _ep("10.244.2.2", "lab-node-2", ready=False, terminating=True),
        _ep("10.244.3.2", "lab-node-3", ready=False, serving=False),
    )
    assert _ips(categorize(spr, NODE_1).cluster) == ["10.244.1.2"]
    draining = _spr(*spr.endpoints[1:])
    assert _ips(categorize(draining, NODE_1).cluster) == ["10.244.2.2"]
    dead = _spr(spr.endpoints[2])
    found = categorize(dead, NODE_1)
    assert found.cluster == () and not found.has_any


# --- zone hints (PreferClose / PreferSameZone) --------------------------------------------


def test_zone_hints_keep_each_node_in_its_zone() -> None:
    spr = _spr(
        _ep("10.244.1.2", "lab-node-1", "zone"),
        _ep("10.244.2.2", "lab-node-2", "zone"),
        _ep("10.244.3.2", "lab-node-3", "zone"),
    )
    assert _ips(categorize(spr, NODE_1).cluster) == ["10.244.1.2", "10.244.3.2"]
    assert _ips(categorize(spr, NODE_3).cluster) == ["10.244.1.2", "10.244.3.2"]
    found = categorize(spr, NODE_2)
    assert _ips(found.cluster) == ["10.244.2.2"] and found.mode == PREFER_SAME_ZONE


def test_zone_hints_are_ignored_when_no_endpoint_is_for_this_zone() -> None:
    spr = _spr(_ep("10.244.1.2", "lab-node-1", "zone"), _ep("10.244.3.2", "lab-node-3", "zone"))
    found = categorize(spr, NODE_2)
    assert _ips(found.cluster) == ["10.244.1.2", "10.244.3.2"] and found.mode == ""


def test_zone_hints_are_ignored_when_one_ready_endpoint_has_none() -> None:
    spr = _spr(_ep("10.244.1.2", "lab-node-1", "zone"), _ep("10.244.2.2", "lab-node-2"))
    assert _ips(categorize(spr, NODE_2).cluster) == ["10.244.1.2", "10.244.2.2"]


def test_a_not_ready_endpoint_without_hints_does_not_turn_them_off() -> None:
    # The controller hints ready endpoints only; topology.go looks at ready ones only.
    spr = _spr(
        _ep("10.244.1.2", "lab-node-1", "zone"),
        _ep("10.244.2.2", "lab-node-2", "zone"),
        _ep("10.244.3.2", "lab-node-3", ready=False),
    )
    assert _ips(categorize(spr, NODE_1).cluster) == ["10.244.1.2"]


def test_a_node_without_a_zone_label_ignores_zone_hints() -> None:
    spr = _spr(_ep("10.244.1.2", "lab-node-1", "zone"), _ep("10.244.2.2", "lab-node-2", "zone"))
    zoneless = NodeTopology("lab-node-1", "")
    assert _ips(categorize(spr, zoneless).cluster) == ["10.244.1.2", "10.244.2.2"]


# --- node hints (PreferSameNode) ----------------------------------------------------------


def test_node_hints_keep_each_node_on_itself() -> None:
    spr = _spr(
        _ep("10.244.1.2", "lab-node-1", "node"),
        _ep("10.244.2.2", "lab-node-2", "node"),
        _ep("10.244.3.2", "lab-node-3", "node"),
    )
    for node, ip in ((NODE_1, "10.244.1.2"), (NODE_2, "10.244.2.2"), (NODE_3, "10.244.3.2")):
        found = categorize(spr, node)
        assert _ips(found.cluster) == [ip] and found.mode == PREFER_SAME_NODE


def test_a_node_without_an_endpoint_falls_back_to_its_zone() -> None:
    spr = _spr(_ep("10.244.1.2", "lab-node-1", "node"), _ep("10.244.2.2", "lab-node-2", "node"))
    found = categorize(spr, NODE_3)  # zone a, like node 1
    assert _ips(found.cluster) == ["10.244.1.2"] and found.mode == PREFER_SAME_ZONE


def test_a_node_without_an_endpoint_in_its_zone_either_uses_them_all() -> None:
    spr = _spr(_ep("10.244.1.2", "lab-node-1", "node"), _ep("10.244.3.2", "lab-node-3", "node"))
    found = categorize(spr, NODE_2)  # zone b: nobody there
    assert _ips(found.cluster) == ["10.244.1.2", "10.244.3.2"] and found.mode == ""


def test_node_hints_are_ignored_when_one_ready_endpoint_has_none() -> None:
    spr = _spr(_ep("10.244.1.2", "lab-node-1", "node"), _ep("10.244.3.2", "lab-node-3", "zone"))
    # Zone hints are complete, so node 1 still keeps to zone a (both endpoints).
    assert topology_mode(spr.endpoints, NODE_1) == PREFER_SAME_ZONE
    assert _ips(categorize(spr, NODE_1).cluster) == ["10.244.1.2", "10.244.3.2"]


def test_hints_with_no_ready_endpoint_fall_back_to_the_terminating_ones() -> None:
    spr = _spr(
        _ep("10.244.1.2", "lab-node-1", "node", ready=False, terminating=True),
        _ep("10.244.2.2", "lab-node-2", "node", ready=False, terminating=True),
    )
    found = categorize(spr, NODE_1)
    assert found.mode == "" and _ips(found.cluster) == ["10.244.1.2", "10.244.2.2"]


# --- internalTrafficPolicy: Local ---------------------------------------------------------


def test_local_policy_uses_this_nodes_ready_endpoints_only() -> None:
    spr = _spr(
        _ep("10.244.1.2", "lab-node-1"),
        _ep("10.244.1.3", "lab-node-1", ready=False),
        _ep("10.244.2.2", "lab-node-2"),
        local=True,
    )
    found = categorize(spr, NODE_1)
    assert _ips(found.local) == ["10.244.1.2"]
    assert found.cluster == () and found.reachable == found.local and found.has_any
    assert found.policy(True) == found.local


def test_local_policy_falls_back_to_this_nodes_serving_terminating_endpoints() -> None:
    spr = _spr(
        _ep("10.244.1.2", "lab-node-1", ready=False, terminating=True),
        _ep("10.244.2.2", "lab-node-2"),
        local=True,
    )
    assert _ips(categorize(spr, NODE_1).local) == ["10.244.1.2"]


def test_local_policy_on_a_node_without_an_endpoint_has_none_though_others_have() -> None:
    spr = _spr(_ep("10.244.1.2", "lab-node-1"), _ep("10.244.3.2", "lab-node-3"), local=True)
    found = categorize(spr, NODE_2)
    assert found.local == () and found.reachable == ()
    assert found.has_any  # so the node drops the traffic, not rejects it


def test_local_policy_with_no_usable_endpoint_anywhere() -> None:
    spr = _spr(_ep("10.244.1.2", "lab-node-1", ready=False, serving=False), local=True)
    found = categorize(spr, NODE_1)
    assert found.local == () and not found.has_any


def test_local_policy_ignores_hints() -> None:
    spr = _spr(
        _ep("10.244.1.2", "lab-node-1", "zone"),
        _ep("10.244.3.2", "lab-node-3", "zone"),
        local=True,
    )
    assert _ips(categorize(spr, NODE_1).local) == ["10.244.1.2"]


def test_an_endpoint_without_a_node_is_nobodys_local_endpoint() -> None:
    nameless = Endpoint("10.244.1.2", 8000, "p", True, True, False)
    assert categorize(_spr(nameless, local=True), NodeTopology("", "")).local == ()


def test_picked_is_what_the_clusterip_is_balanced_over() -> None:
    local = _spr(_ep("10.244.1.2", "lab-node-1"), _ep("10.244.2.2", "lab-node-2"), local=True)
    assert _ips(picked(local, NODE_1)) == ["10.244.1.2"] and picked(local, NODE_3) == ()
    hinted = _spr(_ep("10.244.1.2", "lab-node-1", "zone"), _ep("10.244.2.2", "lab-node-2", "zone"))
    assert _ips(picked(hinted, NODE_3)) == ["10.244.1.2"]
