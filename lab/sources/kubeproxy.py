"""kube-proxy's view: Services and EndpointSlices → one ServicePortRules per Service port.

What pkg/proxy's service and EndpointSlice caches build: a Service port is
"ns/svc:port" (ServicePortName), its endpoints are those of every slice of the
Service whose port has the same name and protocol, at that slice port's number,
deduplicated by ip:port across slices (the first slice by name wins).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from lab.kubeproxy.model import Endpoint, ServicePortRules
from lab.sources import Obj
from lab.sources import slices as sl

DEFAULT_AFFINITY_TIMEOUT = 10800  # the API's default for clientIP.timeoutSeconds


def port_name(svc: Obj, port: Obj) -> str:
    """ServicePortName.String(): "ns/svc:port", or "ns/svc" for an unnamed port."""
    meta = svc["metadata"]
    base = f"{meta['namespace']}/{meta['name']}"
    return f"{base}:{port['name']}" if port.get("name") else base


def affinity_timeout(svc: Obj) -> int | None:
    spec = svc.get("spec") or {}
    if spec.get("sessionAffinity") != "ClientIP":
        return None
    client_ip = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
    return int(client_ip.get("timeoutSeconds", DEFAULT_AFFINITY_TIMEOUT))


def internal_traffic_local(svc: Obj) -> bool:
    return (svc.get("spec") or {}).get("internalTrafficPolicy") == "Local"


def _hinted(raw: Obj, key: str) -> tuple[str, ...]:
    """The names in hints.forZones or hints.forNodes, sorted (kube-proxy keeps a set)."""
    entries = (raw.get("hints") or {}).get(key) or []
    return tuple(sorted({str(e["name"]) for e in entries if e.get("name")}))


def _endpoint(raw: Obj, port: int) -> Endpoint | None:
    addresses = raw.get("addresses") or []
    if not addresses:
        return None  # kube-proxy: "Ignoring invalid endpoint port with empty address"
    cond = sl.conditions(raw)
    return Endpoint(
        ip=addresses[0],
        port=port,
        pod=(raw.get("targetRef") or {}).get("name", ""),
        ready=cond.ready,
        serving=cond.serving,
        terminating=cond.terminating,
        node_name=raw.get("nodeName") or "",
        zone=raw.get("zone") or "",
        hints_zones=_hinted(raw, "forZones"),
        hints_nodes=_hinted(raw, "forNodes"),
    )


def endpoints(name: str, protocol: str, svc_slices: Iterable[Obj]) -> tuple[Endpoint, ...]:
    """The endpoints of one Service port (by its name and protocol), sorted by address."""
    found: dict[str, Endpoint] = {}
    for slice_ in svc_slices:
        for port in sl.ports(slice_):
            if (port.name, port.protocol) != (name, protocol):
                continue
            for raw in slice_.get("endpoints") or []:
                ep = _endpoint(raw, port.port)
                if ep is not None:
                    found.setdefault(f"{ep.ip}:{ep.port}", ep)
    return tuple(sorted(found.values(), key=lambda e: (ipaddress.ip_address(e.ip), e.port)))


def service_port_rules(services: list[Obj], slices: list[Obj]) -> list[ServicePortRules]:
    """Every port of every Service with a ClusterIP, with its endpoints."""
    rules: list[ServicePortRules] = []
    ordered = sorted(services, key=lambda s: (s["metadata"]["namespace"], s["metadata"]["name"]))
    for svc in ordered:
        spec = svc.get("spec") or {}
        # utilproxy.ShouldSkipService: no ClusterIP, headless, or ExternalName.
        if not sl.has_cluster_ip(svc) or spec.get("type") == "ExternalName":
            continue
        own = sl.of_service(svc, slices)
        for port in spec.get("ports") or []:
            protocol = port.get("protocol") or "TCP"
            rules.append(
                ServicePortRules(
                    port_name(svc, port),
                    spec["clusterIP"],
                    int(port["port"]),
                    protocol,
                    endpoints(port.get("name") or "", protocol, own),
                    affinity_timeout(svc),
                    internal_traffic_local(svc),
                )
            )
    return rules
