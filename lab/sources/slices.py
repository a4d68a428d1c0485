"""The EndpointSlices of a Service and their endpoints' conditions, read as kube-proxy does."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lab.sources import Obj

SERVICE_NAME = "kubernetes.io/service-name"


def has_cluster_ip(svc: Obj) -> bool:
    """v1helper.IsServiceIPSet: a ClusterIP allocated, and not headless."""
    ip = (svc.get("spec") or {}).get("clusterIP")
    return bool(ip) and ip != "None"


def of_service(svc: Obj, slices: Iterable[Obj]) -> list[Obj]:
    """The slices labelled with the Service's name in its namespace, by name (a stable order)."""
    meta = svc["metadata"]
    found = [
        s
        for s in slices
        if s["metadata"].get("namespace") == meta.get("namespace")
        and (s["metadata"].get("labels") or {}).get(SERVICE_NAME) == meta["name"]
        # The lab is IPv4 only: kube-proxy's IPv4 proxier takes the IPv4 slices.
        and s.get("addressType", "IPv4") == "IPv4"
    ]
    return sorted(found, key=lambda s: str(s["metadata"]["name"]))


@dataclass(frozen=True)
class SlicePort:
    name: str
    protocol: str
    port: int


def ports(slice_: Obj) -> list[SlicePort]:
    """The slice's usable ports: kube-proxy ignores one without a number (or 0)."""
    found = []
    for raw in slice_.get("ports") or []:
        number = raw.get("port")
        if not number:
            continue
        found.append(SlicePort(raw.get("name") or "", raw.get("protocol") or "TCP", int(number)))
    return found


@dataclass(frozen=True)
class Conditions:
    ready: bool
    serving: bool
    terminating: bool


def conditions(endpoint: Obj) -> Conditions:
    """An unset condition as kube-proxy reads it: ready and serving true, terminating false."""
    raw = endpoint.get("conditions") or {}
    ready, serving, terminating = raw.get("ready"), raw.get("serving"), raw.get("terminating")
    return Conditions(
        ready=ready is None or bool(ready),
        serving=serving is None or bool(serving),
        terminating=bool(terminating),
    )
