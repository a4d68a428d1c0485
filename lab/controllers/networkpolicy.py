"""The policy half of a CNI plugin: the pods as lab/netpol.py sees them, compiled to rules."""

from __future__ import annotations

from lab.apiserver import ApiServer
from lab.naming import host_iface
from lab.netpol import PodRef, compile_policies


def compute(api: ApiServer) -> tuple[list[str], list[list[str]]]:
    refs = []
    for pod in api.pods.values():
        if pod.gone:
            continue
        ports = {
            p.name: (p.port, p.protocol) for c in pod.template.containers for p in c.ports if p.name
        }
        refs.append(
            PodRef(pod.name, pod.namespace, pod.ip, host_iface(pod.name), pod.labels, ports)
        )
    return compile_policies(api.policies, refs, api.manifests.namespace_labels)
