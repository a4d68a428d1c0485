"""The CNI's view of the API objects for NetworkPolicy: lab/sources/cni.py. Root-free."""

from __future__ import annotations

from typing import Any

from lab.cni.policy import compile_policies
from lab.naming import host_iface
from lab.sources.cni import policy_inputs
from tests.lab import apicluster as api

ALLOW_DNS = {
    "metadata": {"name": "allow-dns-egress"},
    "spec": {
        "podSelector": {},
        "policyTypes": ["Egress"],
        "egress": [
            {
                "to": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                        },
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                    }
                ],
                "ports": [{"port": "dns", "protocol": "UDP"}],
            }
        ],
    },
}
PORTS = [
    {"name": "http", "containerPort": 8080},
    {"name": "dns", "containerPort": 53, "protocol": "UDP"},
    {"containerPort": 9000},
]


def _store() -> Any:
    store = api.cluster()
    api.create(store, "networkpolicies", ALLOW_DNS, "networking.k8s.io")
    api.pod(store, "web-a", "web", "10.244.1.10", ports=PORTS)
    dns_port = [{"name": "dns", "containerPort": 5353, "protocol": "UDP"}]
    kube_dns = {"k8s-app": "kube-dns"}
    api.pod(
        store, "dns-a", "", "10.244.1.2", ports=dns_port, namespace="kube-system", labels=kube_dns
    )
    api.create(store, "pods", {"metadata": {"name": "pending"}, "spec": {"containers": []}})
    api.pod(store, "done", "job", "10.244.1.11")
    done = store.get(api.PODS, "default", "done")
    done["status"]["phase"] = "Succeeded"
    store.update(api.PODS, done, "status")
    return store


def _inputs(store: Any) -> Any:
    return policy_inputs(
        api.listed(store, "networkpolicies", "networking.k8s.io"),
        api.listed(store, "pods"),
        api.listed(store, "namespaces"),
    )


def test_pods_on_the_network_with_their_named_ports() -> None:
    _, pods, _ = _inputs(_store())
    # Neither the pending pod (no address) nor the finished one.
    assert [(p.namespace, p.name) for p in pods] == [("default", "web-a"), ("kube-system", "dns-a")]
    web = pods[0]
    assert (web.ip, web.iface, dict(web.labels)) == (
        "10.244.1.10",
        host_iface("web-a"),
        {"app": "web"},
    )
    assert web.ports == {"http": (8080, "TCP"), "dns": (53, "UDP")}


def test_the_policies_in_their_own_namespace_and_the_namespaces_labels() -> None:
    policies, _, labels = _inputs(_store())
    (policy,) = policies
    assert (policy.name, policy.namespace, policy.ingress) == ("allow-dns-egress", "default", None)
    assert policy.egress is not None
    assert labels["kube-system"]["kubernetes.io/metadata.name"] == "kube-system"
    assert set(labels) == {"default", "kube-node-lease", "kube-public", "kube-system"}


def test_what_they_compile_to_lets_web_reach_the_dns_pods_named_port_only() -> None:
    chains, rules = compile_policies(*_inputs(_store()))
    (chain,) = chains
    allowed = [r for r in rules if r[:2] == ["-A", chain] and r[-1] == "RETURN"]
    # kube-system's DNS pod, found by its namespace's label, at its own "dns" port.
    assert [(r[r.index("-d") + 1], r[r.index("--dport") + 1]) for r in allowed] == [
        ("10.244.1.2/32", "5353")
    ]
    jumps = [r for r in rules if r[:2] == ["-A", "CIP-NETPOL"] and r[-1] == chain]
    assert [r[r.index("-i") + 1] for r in jumps] == [host_iface("web-a")]
