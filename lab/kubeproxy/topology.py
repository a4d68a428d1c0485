"""Which endpoints one node's kube-proxy sends a Service port's traffic to.

pkg/proxy/topology.go's CategorizeEndpoints, for the lab's ClusterIP-only Services: a pure
function of the Service port, its endpoints and the node (its name and zone), so that
three nodes' kube-proxies given the same Services and EndpointSlices pick differently.

- Cluster endpoints (internalTrafficPolicy: Cluster): the ready ones, narrowed by the
  topology hints when they can be used from this node: PreferSameNode when every ready
  endpoint has a node hint and one of them is for this node; otherwise PreferSameZone when
  every ready endpoint has a zone hint and one of them is for this node's zone; otherwise
  all of them. Failing any ready endpoint, the serving ones that are terminating.
- Local endpoints (internalTrafficPolicy: Local): the ready ones on this node; failing
  those, the serving terminating ones on this node. None at all: the node drops the
  traffic ("has no local endpoints"), even when other nodes have endpoints.

kube-proxy reads only the hints, never spec.trafficDistribution: the EndpointSlice
controller (lab/api/controllers/endpointslice.py) turns the field into hints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lab.kubeproxy.model import Endpoint, NodeTopology, ServicePortRules

PREFER_SAME_NODE = "PreferSameNode"
PREFER_SAME_ZONE = "PreferSameZone"


@dataclass(frozen=True)
class Categorized:
    """CategorizeEndpoints' four results, and the topology mode it chose."""

    cluster: tuple[Endpoint, ...]  # () when the port never uses Cluster policy
    local: tuple[Endpoint, ...]  # () when it never uses Local policy
    reachable: tuple[Endpoint, ...]  # the endpoints that get an endpoint chain on this node
    has_any: bool  # a usable endpoint anywhere in the cluster
    mode: str = ""  # "", PreferSameZone or PreferSameNode

    def policy(self, internal_local: bool) -> tuple[Endpoint, ...]:
        """The endpoints the ClusterIP's traffic is balanced over on this node."""
        return self.local if internal_local else self.cluster


def is_local(ep: Endpoint, node: NodeTopology) -> bool:
    return bool(ep.node_name) and ep.node_name == node.name


def topology_mode(endpoints: Sequence[Endpoint], node: NodeTopology) -> str:
    """topologyModeFromHints: which hints this node can use ("" for none).

    PreferSameNode needs the PreferSameTrafficDistribution gate, on by default since 1.34
    and GA in 1.35: the lab serves as 1.35 does.
    """
    ready = [e for e in endpoints if e.ready]
    if not ready:
        return ""
    if all(e.hints_nodes for e in ready) and any(node.name in e.hints_nodes for e in ready):
        return PREFER_SAME_NODE
    if all(e.hints_zones for e in ready) and any(node.zone in e.hints_zones for e in ready):
        # A node without a zone label has zone "", which no hint names.
        return PREFER_SAME_ZONE
    return ""


def available_for_topology(ep: Endpoint, mode: str, node: NodeTopology) -> bool:
    """No fallback here: it happened when the mode was chosen."""
    if mode == PREFER_SAME_NODE:
        return node.name in ep.hints_nodes
    if mode == PREFER_SAME_ZONE:
        return node.zone in ep.hints_zones
    return mode == ""


def _keep(endpoints: Sequence[Endpoint], test: Callable[[Endpoint], bool]) -> tuple[Endpoint, ...]:
    return tuple(e for e in endpoints if test(e))


def _cluster(endpoints: Sequence[Endpoint], node: NodeTopology) -> tuple[tuple[Endpoint, ...], str]:
    mode = topology_mode(endpoints, node)
    chosen = _keep(endpoints, lambda e: e.ready and available_for_topology(e, mode, node))
    if not chosen:
        # No ready endpoint anywhere (the mode would have been "" otherwise).
        chosen = _keep(endpoints, lambda e: e.serving and e.terminating)
    return chosen, mode


def _local(endpoints: Sequence[Endpoint], node: NodeTopology) -> tuple[Endpoint, ...]:
    """This node's ready endpoints; failing those, its serving terminating ones."""
    ready = _keep(endpoints, lambda e: is_local(e, node) and e.ready)
    return ready or _keep(endpoints, lambda e: is_local(e, node) and e.serving and e.terminating)


def categorize(spr: ServicePortRules, node: NodeTopology) -> Categorized:
    """CategorizeEndpoints for one ClusterIP Service port seen from `node`.

    A ClusterIP-only port uses Cluster endpoints unless internalTrafficPolicy is Local,
    and Local endpoints only then (UsesClusterEndpoints / UsesLocalEndpoints with no
    external traffic), so topology.go's merge of the two lists never happens here.
    """
    endpoints = spr.endpoints
    if not endpoints:
        return Categorized((), (), (), False)
    if not spr.internal_traffic_local:
        cluster, mode = _cluster(endpoints, node)
        return Categorized(cluster, (), cluster, bool(cluster), mode)
    has_any = any(e.ready or (e.serving and e.terminating) for e in endpoints)
    local = _local(endpoints, node)
    return Categorized((), local, local, has_any)


def picked(spr: ServicePortRules, node: NodeTopology) -> tuple[Endpoint, ...]:
    """The endpoints `node`'s rules balance the ClusterIP's connections over: () when the
    node rejects them (no endpoint anywhere) or drops them (Local, none on this node)."""
    return categorize(spr, node).policy(spr.internal_traffic_local)
