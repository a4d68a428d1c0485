"""kube-proxy's iptables mode (lab/kubeproxy/iptables.py): no root needed but for one check.

The one marked `lab` feeds the rules to `iptables-restore --test`, which needs root.
"""

from __future__ import annotations

import subprocess

import pytest

from lab.iptables import binaries
from lab.kubeproxy.iptables import probability, render_filter, render_nat
from lab.kubeproxy.model import Endpoint, ServicePortRules


def _ep(ip: str, ready: bool = True, serving: bool = True, terminating: bool = False) -> Endpoint:
    return Endpoint(ip, 8000, f"pod-{ip}", ready, serving, terminating)


def _rules(*endpoints: Endpoint) -> ServicePortRules:
    return ServicePortRules("ns/backend:http", "10.96.0.20", 8000, "TCP", tuple(endpoints))


def test_probabilities_are_kube_proxys() -> None:
    assert [probability(i, 4) for i in range(3)] == ["0.2500000000", "0.3333333333", "0.5000000000"]


def test_nat_rules_for_three_endpoints() -> None:
    spr = _rules(_ep("10.244.1.2"), _ep("10.244.1.3"), _ep("10.244.1.4"))
    text = render_nat([spr])
    svc = spr.svc_chain
    lines = text.splitlines()
    assert lines[0] == "*nat" and lines[-1] == "COMMIT"
    assert f":{svc} - [0:0]" in lines
    jumps = [line for line in lines if line.startswith(f"-A {svc} ") and "CIP-SEP-" in line]
    assert len(jumps) == 3
    assert "--probability 0.3333333333" in jumps[0] and "--probability 0.5000000000" in jumps[1]
    assert "statistic" not in jumps[2]
    assert sum("--to-destination 10.244.1." in line for line in lines) == 3
    assert any("! -s 10.244.0.0/16" in line and "CIP-MARK-MASQ" in line for line in lines)
    assert any("-s 10.244.1.3/32" in line and "CIP-MARK-MASQ" in line for line in lines)


def test_only_ready_endpoints_then_terminating_serving_ones() -> None:
    mixed = _rules(_ep("10.244.1.2"), _ep("10.244.1.3", ready=False, terminating=True))
    assert [e.ip for e in mixed.usable()] == ["10.244.1.2"]
    draining = _rules(_ep("10.244.1.3", ready=False, terminating=True))
    assert [e.ip for e in draining.usable()] == ["10.244.1.3"]
    dead = _rules(_ep("10.244.1.3", ready=False, serving=False, terminating=True))
    assert dead.usable() == []
    assert dead.svc_chain not in render_nat([dead])
    assert "ns/backend:http has no endpoints" in render_filter([dead])


def test_stale_chains_are_emptied_then_deleted() -> None:
    text = render_nat([], stale={"CIP-SVC-OLD", "CIP-SERVICES"})
    assert ":CIP-SVC-OLD - [0:0]" in text and "-X CIP-SVC-OLD" in text
    assert "-X CIP-SERVICES" not in text


def test_filter_rules_keep_lab_traffic_in() -> None:
    text = render_filter([])
    for rule in (
        "-A CIP-FORWARD -i cip+ ! -o cip+",
        "-A CIP-FORWARD ! -i cip+ -o cip+",
        "-A CIP-FORWARD -s 10.244.0.0/16 ! -o cip+",
        "-A CIP-FORWARD -d 10.96.0.0/12 ! -o cip+",
    ):
        assert any(line.startswith(rule) for line in text.splitlines()), rule
    # kube-proxy's fences only drop and reject: the CNI accepts pod-to-pod traffic, after
    # its NetworkPolicies (lab/cni/rules.py), which kube-proxy knows nothing of.
    forward = [line for line in text.splitlines() if line.startswith("-A CIP-FORWARD")]
    assert forward[-1] == "-A CIP-FORWARD -o cip0 -j DROP"
    assert not [line for line in text.splitlines() if "ACCEPT" in line and "FORWARD" in line]
    assert "NETPOL" not in text and "CIP-NP-" not in text
    assert any("pods may not open connections to the host" in line for line in text.splitlines())


@pytest.mark.lab
def test_iptables_accepts_the_rules(lab_host: None) -> None:
    """iptables-restore --test parses and checks the rules without applying them."""
    restore = binaries()[1]
    spr = _rules(_ep("10.244.1.2"), _ep("10.244.1.3"))
    empty = ServicePortRules("ns/redis:redis", "10.96.0.30", 6379, "TCP", ())
    for text in (render_nat([spr, empty]), render_filter([spr, empty])):
        done = subprocess.run(
            [restore, "--test", "--noflush"], input=text, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr + text
