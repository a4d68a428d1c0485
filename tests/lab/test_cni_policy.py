"""NetworkPolicies → the CNI's iptables rules (lab/cni/policy.py): no root needed but for one check.

The one marked `lab` feeds the rules, in the CNI's chains, to `iptables-restore --test`.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from lab.cni.policy import NETPOL, PodRef, compile_policies, parse_policy
from lab.cni.rules import render
from lab.iptables import binaries
from lab.manifests import ManifestError, load
from lab.naming import host_iface
from tests.conftest import missing


@pytest.fixture(scope="module")
def manifests():  # type: ignore[no-untyped-def]
    if shutil.which("kubectl") is None:
        missing("kubectl is not installed: the lab renders k8s/ with `kubectl kustomize`")
    return load()


def _pod_ref(name: str, ip: str, app_name: str, ports: dict[str, tuple[int, str]]) -> PodRef:
    return PodRef(
        name, "clusterip-demo", ip, host_iface(name), {"app.kubernetes.io/name": app_name}, ports
    )


PODS = [
    _pod_ref("frontend-a", "10.244.1.2", "frontend", {"http": (8080, "TCP")}),
    _pod_ref("backend-a", "10.244.1.3", "backend", {"http": (8000, "TCP")}),
    _pod_ref("backend-b", "10.244.1.4", "backend", {"http": (8000, "TCP")}),
    _pod_ref("redis-a", "10.244.1.5", "redis", {"redis": (6379, "TCP")}),
    _pod_ref("mysql-0", "10.244.1.6", "mysql", {"mysql": (3306, "TCP")}),
]


def _chain_rules(rules: list[list[str]], jump_iface: str, direction: str) -> list[str]:
    flag = "-i" if direction == "OUT" else "-o"
    jump = next(r for r in rules if r[1] == NETPOL and flag in r and jump_iface in r)
    chain = jump[-1]
    return [" ".join(r[2:]) for r in rules if r[1] == chain]


def test_the_manifests_policies_as_iptables_rules(manifests) -> None:  # type: ignore[no-untyped-def]
    policies = [parse_policy(d, manifests.namespace) for d in manifests.network_policies]
    chains, rules = compile_policies(policies, PODS, manifests.namespace_labels)
    assert len(chains) == 2 * len(PODS)  # default-deny-all isolates every pod both ways
    frontend_out = _chain_rules(rules, PODS[0].iface, "OUT")
    assert [r.split(" -m comment")[0] for r in frontend_out[:-1]] == [
        "-d 10.244.1.3/32 -p tcp -m tcp --dport 8000",
        "-d 10.244.1.4/32 -p tcp -m tcp --dport 8000",
    ]
    assert frontend_out[-1].endswith("-j DROP")
    mysql_in = _chain_rules(rules, PODS[4].iface, "IN")
    assert [r.split(" -m comment")[0] for r in mysql_in[:-1]] == [
        "-s 10.244.1.3/32 -p tcp -m tcp --dport 3306",
        "-s 10.244.1.4/32 -p tcp -m tcp --dport 3306",
    ]
    # Redis may send nothing; the frontend accepts port 8080 from anyone.
    assert _chain_rules(rules, PODS[3].iface, "OUT") == [
        '-m comment --comment "no NetworkPolicy allows it" -j DROP'
    ]
    assert _chain_rules(rules, PODS[0].iface, "IN")[0].startswith("-p tcp -m tcp --dport 8080")
    assert rules[0][-3:] == ["ESTABLISHED,RELATED", "-j", "RETURN"]


def test_policy_details() -> None:
    doc = {
        "metadata": {"name": "p"},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "backend"}},
            "ingress": [{"ports": [{"port": "http"}, {"port": 9000, "endPort": 9010}]}],
        },
    }
    policy = parse_policy(doc, "clusterip-demo")
    assert policy.ingress is not None and policy.egress is None  # policyTypes defaulted
    _, rules = compile_policies([policy], PODS, {})
    backend_in = _chain_rules(rules, PODS[1].iface, "IN")
    assert backend_in[0].startswith("-p tcp -m tcp --dport 8000")  # named port, on the pod
    assert backend_in[1].startswith("-p tcp -m tcp --dport 9000:9010")
    assert not [r for r in rules if "-i" in r and r[1] == NETPOL]  # no egress isolation
    with pytest.raises(ManifestError, match="except"):
        parse_policy(
            {
                "metadata": {"name": "x"},
                "spec": {
                    "podSelector": {},
                    "ingress": [
                        {"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}
                    ],
                },
            },
            "ns",
        )


@pytest.mark.lab
def test_iptables_accepts_the_policy_rules(lab_host: None, manifests) -> None:  # type: ignore[no-untyped-def]
    policies = [parse_policy(d, manifests.namespace) for d in manifests.network_policies]
    chains, rules = compile_policies(policies, PODS, manifests.namespace_labels)
    text = render(chains, rules)
    done = subprocess.run(
        [binaries()[1], "--test", "--noflush"], input=text, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr + text
