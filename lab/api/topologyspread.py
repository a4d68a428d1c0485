"""A pod's topologySpreadConstraints, as kube-scheduler's PodTopologySpread plugin reads them.

For each constraint the pods its labelSelector matches (with the pod's own values of
matchLabelKeys added, so a Deployment's new ReplicaSet spreads on its own) are counted
per domain, the values of topologyKey over the nodes the pod could go to by its node
affinity (nodeAffinityPolicy Honor, nodeTaintsPolicy Ignore: the defaults). A
DoNotSchedule constraint refuses a node where the count would pass the global minimum
by more than maxSkew; a ScheduleAnyway constraint only ranks nodes: the fewer matching
pods in the node's domain the better, weighted by log(domains + 2) as the plugin does.
"""

from __future__ import annotations

import math
from typing import Any

from lab.api import nodefit, taints
from lab.api.selectors import selector_matches

Obj = dict[str, Any]
SPREAD = "node(s) didn't match pod topology spread constraints"
MISSING_LABEL = f"{SPREAD} (missing required label)"
# A node without the topology key ranks below every node with it.
NO_DOMAIN_PENALTY = 1e6


def constraints(pod: Obj, when: str) -> list[Obj]:
    listed = (pod.get("spec") or {}).get("topologySpreadConstraints") or []
    return [c for c in listed if c.get("whenUnsatisfiable", "DoNotSchedule") == when]


def _selector(pod: Obj, constraint: Obj) -> Obj:
    selector = dict(constraint.get("labelSelector") or {})
    labels = pod["metadata"].get("labels") or {}
    extra = {k: labels[k] for k in constraint.get("matchLabelKeys") or [] if k in labels}
    if extra:
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), **extra}
    return selector


def _counted_node(pod: Obj, constraint: Obj, node: Obj) -> bool:
    if constraint.get("nodeAffinityPolicy", "Honor") == "Honor" and not nodefit.matches_affinity(
        pod, node
    ):
        return False
    if constraint.get("nodeTaintsPolicy", "Ignore") == "Honor":
        tolerations = (pod.get("spec") or {}).get("tolerations") or []
        return taints.untolerated(nodefit.node_taints(node), tolerations, ("NoSchedule",)) is None
    return True


def counts(pod: Obj, constraint: Obj, nodes: list[Obj], pods: list[Obj]) -> dict[str, int]:
    """Matching pods per domain (every domain of a counted node, zero included)."""
    key = constraint.get("topologyKey", "")
    domain_of = {
        n["metadata"]["name"]: n["metadata"]["labels"][key]
        for n in nodes
        if key in (n["metadata"].get("labels") or {}) and _counted_node(pod, constraint, n)
    }
    result = dict.fromkeys(domain_of.values(), 0)
    selector = _selector(pod, constraint)
    namespace = pod["metadata"].get("namespace")
    for other in pods:
        meta = other["metadata"]
        where = (other.get("spec") or {}).get("nodeName")
        if meta.get("namespace") != namespace or meta.get("deletionTimestamp"):
            continue
        if where in domain_of and selector_matches(selector, meta.get("labels") or {}):
            result[domain_of[where]] += 1
    return result


def refusal(pod: Obj, node: Obj, nodes: list[Obj], pods: list[Obj]) -> str | None:
    """Why a DoNotSchedule constraint refuses the node, None if none does."""
    labels = node["metadata"].get("labels") or {}
    for constraint in constraints(pod, "DoNotSchedule"):
        key = constraint.get("topologyKey", "")
        if key not in labels:
            return MISSING_LABEL
        per_domain = counts(pod, constraint, nodes, pods)
        selector = _selector(pod, constraint)
        itself = 1 if selector_matches(selector, pod["metadata"].get("labels") or {}) else 0
        here = per_domain.get(labels[key], 0)
        if here + itself - min(per_domain.values(), default=0) > constraint.get("maxSkew", 1):
            return SPREAD
    return None


def penalty(pod: Obj, node: Obj, nodes: list[Obj], pods: list[Obj]) -> float:
    """How crowded the node's domains are by the ScheduleAnyway constraints (lower is better)."""
    labels = node["metadata"].get("labels") or {}
    total = 0.0
    for constraint in constraints(pod, "ScheduleAnyway"):
        key = constraint.get("topologyKey", "")
        if key not in labels:
            total += NO_DOMAIN_PENALTY
            continue
        per_domain = counts(pod, constraint, nodes, pods)
        total += per_domain.get(labels[key], 0) * math.log(len(per_domain) + 2)
    return total
