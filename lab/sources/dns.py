"""The cluster DNS's view: Services and EndpointSlices → lab/dns.py's DnsService.

What kube-dns and CoreDNS answer from: a Service with a ClusterIP by its address
and ports; a headless one by its endpoints that are ready (all of them when the
Service publishes not-ready addresses), each with its hostname if the
EndpointSlice controller gave it one and the slice's port numbers.
"""

from __future__ import annotations

import ipaddress

from lab.dns import DnsEndpoint, DnsPort, DnsService
from lab.sources import Obj
from lab.sources import slices as sl


def _endpoints(svc: Obj, svc_slices: list[Obj]) -> tuple[DnsEndpoint, ...]:
    publish_all = bool(svc["spec"].get("publishNotReadyAddresses"))
    found: dict[str, DnsEndpoint] = {}
    for slice_ in svc_slices:
        ports = tuple(DnsPort(p.name, p.protocol, p.port) for p in sl.ports(slice_))
        for raw in slice_.get("endpoints") or []:
            addresses = raw.get("addresses") or []
            if not addresses or not (publish_all or sl.conditions(raw).ready):
                continue
            ip = addresses[0]
            seen = found.get(ip)
            if seen is None:
                found[ip] = DnsEndpoint(ip, raw.get("hostname") or None, ports)
            else:
                # The same pod in two slices: one name, the ports of both.
                more = tuple(p for p in ports if p not in seen.ports)
                found[ip] = DnsEndpoint(ip, seen.hostname, seen.ports + more)
    return tuple(sorted(found.values(), key=lambda e: ipaddress.ip_address(e.ip)))


def dns_services(services: list[Obj], slices: list[Obj]) -> list[DnsService]:
    """Every Service as the DNS sees it, in namespace and name order."""
    found = []
    for svc in sorted(services, key=lambda s: (s["metadata"]["namespace"], s["metadata"]["name"])):
        spec = svc.get("spec") or {}
        cluster_ip = spec.get("clusterIP")
        if not cluster_ip or spec.get("type") == "ExternalName":
            continue  # no address allocated yet, or a CNAME the lab does not serve
        meta = svc["metadata"]
        ports = tuple(
            DnsPort(p.get("name") or "", p.get("protocol") or "TCP", int(p["port"]))
            for p in spec.get("ports") or []
        )
        if cluster_ip != "None":
            found.append(DnsService(meta["name"], meta["namespace"], cluster_ip, ports))
            continue
        endpoints = _endpoints(svc, sl.of_service(svc, slices))
        found.append(DnsService(meta["name"], meta["namespace"], None, ports, endpoints))
    return found
