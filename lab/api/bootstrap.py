"""What a new cluster has before anyone applies anything: namespaces, `kubernetes`, the
DNS Service, the lab's nodes (one unless asked for more)."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from lab.api.admission import default
from lab.api.discovery import VERSION
from lab.api.resources import lookup
from lab.api.storage import Store, now
from lab.naming import ZONE_LABEL, internal_ip, node_name, node_pod_cidr, zone_of

NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")
KUBERNETES_IP = "10.96.0.1"
DNS_IP = "10.96.0.10"


def _os_image() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "Linux"


def _host_file(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:  # not readable without root (product_uuid) or absent
        return ""


def node(index: int = 1, nodes: int = 1) -> dict[str, Any]:
    """Node `lab-node-<index>` as its kubelet registers it, with the podCIDR the node IPAM
    controller hands it; node 1 carries the control plane's role label, as kubeadm's does."""
    name, cidr = node_name(index), str(node_pod_cidr(index))
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": VERSION["platform"].split("/")[1],
        ZONE_LABEL: zone_of(index),
    }
    if index == 1:
        labels["node-role.kubernetes.io/control-plane"] = ""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "the lab's node is ready",
                    "lastHeartbeatTime": now(),
                    "lastTransitionTime": now(),
                },
            ],
            "addresses": [
                {"type": "InternalIP", "address": internal_ip(index, nodes)},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                # What the kubelet reads from the host: the node is this machine.
                "machineID": _host_file("/etc/machine-id"),
                "systemUUID": _host_file("/sys/class/dmi/id/product_uuid"),
                "bootID": _host_file("/proc/sys/kernel/random/boot_id"),
                "kubeletVersion": VERSION["gitVersion"],
                "kubeProxyVersion": VERSION["gitVersion"],
                "osImage": _os_image(),
                "kernelVersion": platform.release(),
                "containerRuntimeVersion": "clusterip-lab://1",
                "operatingSystem": "linux",
                "architecture": VERSION["platform"].split("/")[1],
            },
        },
    }


def _service(
    namespace: str,
    name: str,
    ip: str,
    ports: list[dict[str, Any]],
    labels: dict[str, str],
    selector: dict[str, str] | None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"clusterIP": ip, "ports": ports}
    if selector:
        spec["selector"] = selector
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec,
    }


def _kubernetes_endpoints(port: int) -> list[tuple[str, str, dict[str, Any]]]:
    """`default/kubernetes` points at the API server itself, as its reconciler keeps it."""
    labels = {"kubernetes.io/service-name": "kubernetes"}
    slice_ = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": labels},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }
    endpoints = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": [
            {
                "addresses": [{"ip": "127.0.0.1"}],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            }
        ],
    }
    return [("discovery.k8s.io", "endpointslices", slice_), ("", "endpoints", endpoints)]


def populate(store: Store, api_port: int, nodes: int = 1) -> None:
    namespaces = lookup("", "v1", "namespaces")
    services = lookup("", "v1", "services")
    node_resource = lookup("", "v1", "nodes")
    assert namespaces and services and node_resource
    for name in NAMESPACES:
        store.create(namespaces, default(store, namespaces, {"metadata": {"name": name}}))
    kubernetes = _service(
        "default",
        "kubernetes",
        KUBERNETES_IP,
        [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": api_port}],
        {"component": "apiserver", "provider": "kubernetes"},
        None,
    )
    dns = _service(
        "kube-system",
        "kube-dns",
        DNS_IP,
        [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
        ],
        {
            "k8s-app": "kube-dns",
            "kubernetes.io/cluster-service": "true",
            "kubernetes.io/name": "CoreDNS",
        },
        {"k8s-app": "kube-dns"},
    )
    for svc in (kubernetes, dns):
        store.create(services, default(store, services, svc))
    for group, plural, obj in _kubernetes_endpoints(api_port):
        resource = lookup(group, "v1", plural)
        assert resource
        store.create(resource, obj)
    for index in range(1, nodes + 1):
        store.create(node_resource, node(index, nodes))
