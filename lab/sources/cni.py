"""The CNI's NetworkPolicy half: what lab/cni/policy.py compiles, from the API objects.

The policies, every pod on the pod network (an address, and not finished: a
Succeeded or Failed pod's address may already be someone else's) with its named
container ports, and each namespace's labels (kubernetes.io/metadata.name among
them, set by the API server) for the namespaceSelectors.
"""

from __future__ import annotations

from lab.cni.policy import PodRef, Policy, parse_policy
from lab.naming import host_iface
from lab.sources import Obj

FINISHED = ("Succeeded", "Failed")


def _named_ports(pod: Obj) -> dict[str, tuple[int, str]]:
    return {
        port["name"]: (int(port["containerPort"]), port.get("protocol") or "TCP")
        for container in (pod.get("spec") or {}).get("containers") or []
        for port in container.get("ports") or []
        if port.get("name")
    }


def pod_refs(pods: list[Obj]) -> list[PodRef]:
    refs = []
    for pod in pods:
        status = pod.get("status") or {}
        if not status.get("podIP") or status.get("phase") in FINISHED:
            continue
        meta = pod["metadata"]
        refs.append(
            PodRef(
                meta["name"],
                meta["namespace"],
                status["podIP"],
                host_iface(meta["name"]),
                dict(meta.get("labels") or {}),
                _named_ports(pod),
            )
        )
    return sorted(refs, key=lambda r: (r.namespace, r.name))


def namespace_labels(namespaces: list[Obj]) -> dict[str, dict[str, str]]:
    found = {}
    for ns in namespaces:
        name = ns["metadata"]["name"]
        labels = {k: str(v) for k, v in (ns["metadata"].get("labels") or {}).items()}
        # The API server sets it on every namespace; kept even on one that lost it.
        labels["kubernetes.io/metadata.name"] = name
        found[name] = labels
    return found


def policy_inputs(
    policies: list[Obj], pods: list[Obj], namespaces: list[Obj]
) -> tuple[list[Policy], list[PodRef], dict[str, dict[str, str]]]:
    """compile_policies' three arguments."""
    ordered = sorted(policies, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))
    parsed = [parse_policy(doc, doc["metadata"]["namespace"]) for doc in ordered]
    return parsed, pod_refs(pods), namespace_labels(namespaces)
