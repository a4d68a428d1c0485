"""The CNI's own chains around the NetworkPolicies (lab/cni/rules.py): no root needed."""

from __future__ import annotations

from lab.cni.policy import PodRef, Policy, compile_policies
from lab.cni.rules import FORWARD, HOOKS, is_cni_line, render
from lab.manifests import Selector
from lab.naming import host_iface

POD = PodRef("redis-0", "ns", "10.244.1.5", host_iface("redis-0"), {"app": "redis"})
DENY_ALL = Policy("deny", "ns", Selector.parse({}), ingress=(), egress=None)


def _lines(text: str, chain: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"-A {chain} ")]


def test_without_policies_pod_to_pod_traffic_is_accepted_and_nothing_else() -> None:
    text = render()
    lines = text.splitlines()
    assert lines[0] == "*filter" and lines[-1] == "COMMIT"
    assert f":{FORWARD} - [0:0]" in lines and ":CIP-NETPOL - [0:0]" in lines
    assert _lines(text, FORWARD) == [
        f"-A {FORWARD} ! -i cip+ -j RETURN",
        f"-A {FORWARD} ! -o cip+ -j RETURN",
        f"-A {FORWARD} -o cip0 -j RETURN",
        f"-A {FORWARD} -j CIP-NETPOL",
        f"-A {FORWARD} -j ACCEPT",
    ]
    assert _lines(text, "CIP-NETPOL") == []
    assert HOOKS == (("filter", "FORWARD", ("-j", FORWARD)),)


def test_the_policies_rules_go_in_the_cnis_chains_and_nothing_of_kube_proxys() -> None:
    chains, rules = compile_policies([DENY_ALL], [POD], {})
    text = render(chains, rules)
    (chain,) = chains
    assert chain.startswith("CIP-NP-IN-") and f":{chain} - [0:0]" in text.splitlines()
    assert f"-j {chain}" in "\n".join(_lines(text, "CIP-NETPOL"))
    assert _lines(text, chain)[-1].endswith("-j DROP")
    # kube-proxy's chains are kube-proxy's to write: declaring one here would empty it.
    for theirs in ("CIP-FORWARD", "CIP-SERVICES", "CIP-INPUT", "DNAT"):
        assert theirs not in text


def test_a_pod_chain_no_longer_wanted_is_emptied_then_deleted() -> None:
    (gone,), _ = compile_policies([DENY_ALL], [POD], {})
    text = render((), (), stale={gone, FORWARD, "CIP-NETPOL"})
    lines = text.splitlines()
    assert f":{gone} - [0:0]" in lines and lines[-2] == f"-X {gone}"
    assert f"-X {FORWARD}" not in lines and "-X CIP-NETPOL" not in lines


def test_which_lines_of_iptables_s_are_the_cnis() -> None:
    ours = [
        f"-N {FORWARD}",
        "-N CIP-NETPOL",
        "-N CIP-NP-IN-0123456789ABCDEF",
        f'-A FORWARD -m comment --comment "clusterip-demo lab" -j {FORWARD}',
        f"-A {FORWARD} -j CIP-NETPOL",
        "-A CIP-NETPOL -o cip1 -j CIP-NP-IN-0123456789ABCDEF",
        "-A CIP-NP-IN-0123456789ABCDEF -j DROP",
    ]
    theirs = [
        "-N CIP-FORWARD",
        '-A FORWARD -m comment --comment "clusterip-demo lab" -j CIP-FORWARD',
        "-A CIP-FORWARD -o cip0 -j DROP",
        "-A FORWARD -i cip1 -j CIP-FAULT-ABC",
        "-P FORWARD ACCEPT",
    ]
    assert [line for line in ours + theirs if is_cni_line(line)] == ours


def test_of_several_nodes_the_kubelets_address_passes_before_the_policies() -> None:
    chains, rules = compile_policies([DENY_ALL], [POD], {})
    text = render(chains, rules, trusted=["10.250.0.1"])
    forward = _lines(text, FORWARD)
    accept = f"-A {FORWARD} -s 10.250.0.1/32 -j ACCEPT"
    assert accept in forward
    assert forward.index(accept) < forward.index(f"-A {FORWARD} -j CIP-NETPOL")
    assert "10.250.0.1" not in render(chains, rules)  # the one-node lab: nothing trusted
