"""Whether a pod may go to a node at all: kube-scheduler's filters, bar the topology spread
(lab/api/topologyspread.py). Each refusal is worded as kube-scheduler words it, for the
FailedScheduling event ("0/3 nodes are available: 1 node(s) were unschedulable, …").
"""

from __future__ import annotations

from typing import Any

from lab.api import taints

Obj = dict[str, Any]
UNSCHEDULABLE = "node(s) were unschedulable"
AFFINITY = "node(s) didn't match Pod's node affinity/selector"


def ready_status(node: Obj) -> str:
    """The Ready condition's status: True, False or Unknown (Unknown when absent)."""
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status", "Unknown"))
    return "Unknown"


def node_taints(node: Obj) -> list[Obj]:
    """The node's taints, and the one its condition implies if the node-lifecycle
    controller has not written it yet (TaintNodesByCondition): a NotReady node is not
    a place for a new pod."""
    listed = list((node.get("spec") or {}).get("taints") or [])
    status = ready_status(node)
    if status != "True":
        key = taints.UNREACHABLE if status == "Unknown" else taints.NOT_READY
        if not any(t.get("key") == key and t.get("effect") == "NoSchedule" for t in listed):
            listed.append({"key": key, "effect": "NoSchedule"})
    return listed


def _expression(expr: Obj, value: str | None) -> bool:
    operator, values = expr.get("operator"), expr.get("values") or []
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None and values:
        try:
            number, bound = int(value), int(values[0])
        except ValueError:
            return False
        return number > bound if operator == "Gt" else number < bound
    return False


def _term(term: Obj, node: Obj) -> bool:
    labels = node["metadata"].get("labels") or {}
    fields = {"metadata.name": node["metadata"]["name"]}
    expressions = term.get("matchExpressions") or []
    by_field = term.get("matchFields") or []
    if not expressions and not by_field:
        return False  # an empty term matches no node
    return all(_expression(e, labels.get(e.get("key", ""))) for e in expressions) and all(
        _expression(f, fields.get(f.get("key", ""))) for f in by_field
    )


def matches_affinity(pod: Obj, node: Obj) -> bool:
    """nodeSelector (every label) and requiredDuringScheduling node affinity (any term)."""
    spec = pod.get("spec") or {}
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms")
    return not terms or any(_term(t, node) for t in terms)


def refusal(pod: Obj, node: Obj) -> str | None:
    """Why the pod may not go to the node (the first filter that says no), None if it may."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    if (node.get("spec") or {}).get("unschedulable"):
        marked = {"key": taints.UNSCHEDULABLE, "effect": "NoSchedule"}
        if not any(taints.tolerates(t, marked) for t in tolerations):
            return UNSCHEDULABLE
    taint = taints.untolerated(node_taints(node), tolerations, ("NoSchedule", "NoExecute"))
    if taint is not None:
        return f"node(s) had untolerated taint {taints.describe(taint)}"
    if not matches_affinity(pod, node):
        return AFFINITY
    return None
