"""The EndpointSlice controller: for each Service, the pods its selector matches.

Each endpoint carries the kubelet's conditions (ready, serving, terminating)
and the pod's targetPort, a named one looked up in that pod's containers.
Only Services with a ClusterIP become kube-proxy rules; the headless ones'
endpoints are what the cluster DNS answers (lab/dns.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from lab.apiserver import ApiServer
from lab.iptables import Endpoint, ServicePortRules
from lab.kubelet import Pod
from lab.manifests import PodTemplate, Selector, Service, ServicePort


def target_port(target: int | str, template: PodTemplate) -> int | None:
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for container in template.containers:
        port = container.port_number(target)
        if port is not None:
            return port
    return None


def selected_pods(svc: Service, pods: Iterable[Pod]) -> list[Pod]:
    """The pods a Service's selector picks in its namespace that have a network and are not gone."""
    if not svc.selector:
        return []
    selector = Selector.from_labels(svc.selector)
    return [
        p
        for p in pods
        if p.namespace == svc.namespace
        and selector.matches(p.labels)
        and p.net is not None
        and not p.gone
        and p.phase != "Failed"
    ]


def endpoints(svc: Service, port: ServicePort, pods: Sequence[Pod]) -> tuple[Endpoint, ...]:
    found = []
    for pod in pods:
        target = target_port(port.target_port, pod.template)
        if target is None:
            continue
        found.append(
            Endpoint(
                ip=pod.ip,
                port=target,
                pod=pod.name,
                ready=pod.ready,
                serving=pod.serving,
                terminating=pod.deleting,
            )
        )
    found.sort(key=lambda e: ipaddress.ip_address(e.ip))
    return tuple(found)


def compute(api: ApiServer) -> list[ServicePortRules]:
    """Every port of every Service with a ClusterIP, with its endpoints."""
    rules: list[ServicePortRules] = []
    for svc in api.services():
        ip = api.cluster_ip(svc)
        if ip is None:
            continue
        pods = selected_pods(svc, api.pods.values())
        for port in svc.ports:
            rules.append(
                ServicePortRules(
                    svc.port_name(port),
                    ip,
                    port.port,
                    port.protocol,
                    endpoints(svc, port, pods),
                    svc.affinity_timeout,
                )
            )
    return rules


class EndpointSliceController:
    """Recomputes the slices and records an event when a port's ready set changes."""

    def __init__(self, api: ApiServer) -> None:
        self.api = api
        self.rules: list[ServicePortRules] = []
        self._ready_sets: dict[tuple[str, str], tuple[str, ...]] = {}

    def sync(self) -> list[ServicePortRules]:
        rules = compute(self.api)
        self.rules = rules
        for rule in rules:
            ready = tuple(f"{e.ip}:{e.port}" for e in rule.usable())
            key = (rule.port_name, rule.protocol)
            if self._ready_sets.get(key) != ready:
                self._ready_sets[key] = ready
                self.api.event(
                    f"endpointslice/{rule.port_name.split('/')[1]}",
                    "Updated",
                    f"{len(ready)} ready: {', '.join(ready) or '(none)'}",
                )
        return rules
