"""The kubelet's service-link variables for a pod, from the Service objects.

getServiceEnvVarMap (pkg/kubelet/kubelet_pods.go): every Service with a ClusterIP
in the pod's namespace when enableServiceLinks is on, and always the master
Service `kubernetes` of `default` (KUBERNETES_SERVICE_HOST, …), which a Service
of that name in the pod's own namespace replaces. lab/envvars.py formats them.
"""

from __future__ import annotations

from lab.envvars import service_link_env
from lab.manifests import Service, ServicePort
from lab.sources import Obj
from lab.sources.slices import has_cluster_ip

MASTER_NAMESPACE = "default"
MASTER_SERVICES = ("kubernetes",)


def _service(svc: Obj) -> Service:
    meta, spec = svc["metadata"], svc.get("spec") or {}
    ports = tuple(
        ServicePort(
            name=p.get("name") or "",
            port=int(p["port"]),
            target_port=p.get("targetPort", p["port"]),
            protocol=p.get("protocol") or "TCP",
        )
        for p in spec.get("ports") or []
    )
    return Service(meta["name"], meta["namespace"], spec.get("selector"), ports, spec["clusterIP"])


def linked_services(
    services: list[Obj], namespace: str, enable_service_links: bool = True
) -> list[Obj]:
    """The Services whose variables a pod of `namespace` gets, one per name."""
    chosen: dict[str, Obj] = {}
    for svc in services:
        if not has_cluster_ip(svc):
            continue
        name, ns = svc["metadata"]["name"], svc["metadata"]["namespace"]
        if ns == MASTER_NAMESPACE and name in MASTER_SERVICES:
            chosen.setdefault(name, svc)
        elif ns == namespace and enable_service_links:
            chosen[name] = svc
    return sorted(chosen.values(), key=lambda s: str(s["metadata"]["name"]))


def service_env(
    services: list[Obj], namespace: str, enable_service_links: bool = True
) -> dict[str, str]:
    """FOO_SERVICE_HOST, FOO_SERVICE_PORT, FOO_PORT_80_TCP, … for a pod of `namespace`."""
    linked = linked_services(services, namespace, enable_service_links)
    return service_link_env([(_service(s), s["spec"]["clusterIP"]) for s in linked])
