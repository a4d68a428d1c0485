"""An EndpointSlice (and the legacy Endpoints) for every Service with a selector, headless
ones included, listing the pods it selects with their ready/serving/terminating conditions,
their node and its zone, and, for a pod whose subdomain is the Service, its hostname (what
the DNS names it by).

For `spec.trafficDistribution` the controller writes topology hints on the ready endpoints,
as kube-controller-manager's trafficdist package does: PreferClose and PreferSameZone, a
forZones hint naming the endpoint's own zone; PreferSameNode (GA in Kubernetes 1.35, which
the lab serves as), forNodes naming its own node as well. kube-proxy on each node reads
them (lab/kubeproxy/topology.py)."""

from __future__ import annotations

import random
from typing import Any

from lab.api.controllers.owners import controller_ref
from lab.api.resources import lookup
from lab.api.selectors import selector_matches
from lab.api.storage import Obj, Store
from lab.naming import ZONE_LABEL, random_suffix

SERVICES = lookup("", "v1", "services")
PODS = lookup("", "v1", "pods")
SLICES = lookup("discovery.k8s.io", "v1", "endpointslices")
ENDPOINTS = lookup("", "v1", "endpoints")
NODES = lookup("", "v1", "nodes")
assert SERVICES and PODS and SLICES and ENDPOINTS and NODES
# Nodes too: an endpoint's zone is its node's label.
WATCHED = [SERVICES, PODS, SLICES, ENDPOINTS, NODES]
ZONE_HINTS = frozenset({"PreferClose", "PreferSameZone", "PreferSameNode"})
MANAGED_BY = "endpointslice-controller.k8s.io"
SERVICE_NAME = "kubernetes.io/service-name"


def _ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _target_port(svc_port: Obj, pods: list[Obj]) -> int | None:
    target = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(target, int):
        return target
    for pod in pods:
        for container in pod["spec"].get("containers") or []:
            for port in container.get("ports") or []:
                if port.get("name") == target:
                    return int(port["containerPort"])
    return None


def _hints(endpoint: Obj, distribution: str | None) -> Obj | None:
    """trafficdist's preferCloseHeuristic: a ready endpoint is hinted for its own zone (and
    node, for PreferSameNode); without a zone or node there is nothing to hint."""
    if distribution not in ZONE_HINTS or not endpoint["conditions"]["ready"]:
        return None
    hints: Obj = {}
    if endpoint.get("zone"):
        hints["forZones"] = [{"name": endpoint["zone"]}]
    if distribution == "PreferSameNode" and endpoint.get("nodeName"):
        hints["forNodes"] = [{"name": endpoint["nodeName"]}]
    return hints or None


def _endpoint(pod: Obj, svc: Obj, zones: dict[str, str]) -> Obj:
    serving = _ready(pod)
    terminating = bool(pod["metadata"].get("deletionTimestamp"))
    # A terminating pod is never ready, unless the Service publishes not-ready addresses.
    ready = bool(svc["spec"].get("publishNotReadyAddresses")) or (serving and not terminating)
    endpoint: Obj = {
        "addresses": [pod["status"]["podIP"]],
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
    }
    # The pod's own DNS name under the Service: <hostname>.<svc>.<ns>.svc (ShouldSetHostname).
    hostname = pod["spec"].get("hostname")
    if hostname and pod["spec"].get("subdomain") == svc["metadata"]["name"]:
        endpoint["hostname"] = hostname
    node = pod["spec"].get("nodeName")
    endpoint["nodeName"] = node
    if zones.get(node or ""):
        endpoint["zone"] = zones[node]
    endpoint["targetRef"] = {
        "kind": "Pod",
        "namespace": pod["metadata"]["namespace"],
        "name": pod["metadata"]["name"],
        "uid": pod["metadata"]["uid"],
    }
    hints = _hints(endpoint, svc["spec"].get("trafficDistribution"))
    if hints:
        endpoint["hints"] = hints
    return endpoint


def _slice(svc: Obj, pods: list[Obj], existing: Obj | None, zones: dict[str, str]) -> Obj:
    meta = svc["metadata"]
    labels = {
        **(meta.get("labels") or {}),
        SERVICE_NAME: meta["name"],
        "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
    }
    if svc["spec"].get("clusterIP") == "None":
        labels["service.kubernetes.io/headless"] = ""
    ports: list[dict[str, Any]] = []
    if pods:
        for port in svc["spec"].get("ports") or []:
            number = _target_port(port, pods)
            ports.append(
                {
                    "name": port.get("name", ""),
                    "port": number,
                    "protocol": port.get("protocol", "TCP"),
                }
            )
    rng = random.Random(meta["uid"])
    body = existing or {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{meta['name']}-{random_suffix(rng)}",
            "namespace": meta["namespace"],
            "ownerReferences": [controller_ref(svc)],
        },
    }
    body["metadata"]["labels"] = labels
    body["addressType"] = "IPv4"
    body["endpoints"] = [_endpoint(p, svc, zones) for p in pods]
    body["ports"] = ports
    return body


def _endpoints(svc: Obj, pods: list[Obj], existing: Obj | None) -> Obj:
    meta = svc["metadata"]
    body = existing or {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
    }
    body["metadata"]["labels"] = dict(meta.get("labels") or {})
    subsets = []
    if pods:
        ready = [
            {
                "ip": p["status"]["podIP"],
                "nodeName": p["spec"].get("nodeName"),
                "targetRef": {
                    "kind": "Pod",
                    "namespace": p["metadata"]["namespace"],
                    "name": p["metadata"]["name"],
                    "uid": p["metadata"]["uid"],
                },
            }
            for p in pods
            if _ready(p)
        ]
        not_ready = [{"ip": p["status"]["podIP"]} for p in pods if not _ready(p)]
        ports = [
            {
                "name": port.get("name", ""),
                "port": _target_port(port, pods),
                "protocol": port.get("protocol", "TCP"),
            }
            for port in svc["spec"].get("ports") or []
        ]
        subset: Obj = {"ports": ports}
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        subsets.append(subset)
    if subsets:
        body["subsets"] = subsets
    else:
        body.pop("subsets", None)
    return body


def _write(store: Store, resource: Any, wanted: Obj, existed: bool) -> None:
    if existed:
        store.update(resource, wanted)
    else:
        store.create(resource, wanted)


def reconcile(store: Store) -> None:
    services, _ = store.list(SERVICES)
    pods, _ = store.list(PODS)
    slices, _ = store.list(SLICES)
    nodes, _ = store.list(NODES)
    zones = {
        n["metadata"]["name"]: (n["metadata"].get("labels") or {}).get(ZONE_LABEL, "")
        for n in nodes
    }
    for svc in services:
        selector = svc["spec"].get("selector")
        if not selector:
            continue
        meta = svc["metadata"]
        chosen = [
            p
            for p in pods
            if p["metadata"]["namespace"] == meta["namespace"]
            and (p.get("status") or {}).get("podIP")
            and selector_matches({"matchLabels": selector}, p["metadata"].get("labels") or {})
        ]
        existing = next(
            (
                s
                for s in slices
                if s["metadata"]["namespace"] == meta["namespace"]
                and (s["metadata"].get("labels") or {}).get(SERVICE_NAME) == meta["name"]
                and (s["metadata"].get("labels") or {}).get(
                    "endpointslice.kubernetes.io/managed-by"
                )
                == MANAGED_BY
            ),
            None,
        )
        _write(store, SLICES, _slice(svc, chosen, existing, zones), existing is not None)
        old_ep = store.find(ENDPOINTS, meta["namespace"], meta["name"])
        _write(store, ENDPOINTS, _endpoints(svc, chosen, old_ep), old_ep is not None)
    _drop_orphaned_endpoints(store, services)


def _drop_orphaned_endpoints(store: Store, services: list[Obj]) -> None:
    """Endpoints carry no ownerReference: the controller removes them with their Service."""
    names = {(s["metadata"]["namespace"], s["metadata"]["name"]) for s in services}
    endpoints, _ = store.list(ENDPOINTS)
    for ep in endpoints:
        key = (ep["metadata"]["namespace"], ep["metadata"]["name"])
        if key not in names:
            store.delete(ENDPOINTS, *key)
