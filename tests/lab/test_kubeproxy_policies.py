"""Traffic policies in kube-proxy's rules, in both modes, per node: root-free.

internalTrafficPolicy: Local (iptables: CIP-SVL-…; nftables: `local-…`; no local endpoint:
the node drops the ClusterIP's traffic) and the topology hints of trafficDistribution (only
the chosen endpoints in CIP-SVC-… / `service-…`). The last tests run the whole chain on a
three-node API store: the EndpointSlice controller writes the hints, each node's
kube-proxy renders its rules, and the rules are read back into which pod answers, how
often, from which node. The packets themselves are the three-node lab's test.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from lab.api import bootstrap
from lab.api.controllers import endpointslice
from lab.api.storage import Store
from lab.iptables import binaries
from lab.kubeproxy import nftables
from lab.kubeproxy.iptables import IptablesMode, render_filter, render_nat
from lab.kubeproxy.model import (
    Apply,
    Endpoint,
    NodeTopology,
    ProxyState,
    ServicePortRules,
    sep_chain,
)
from lab.kubeproxy.nftables import NftablesMode
from lab.kubeproxy.proxier import Proxier
from lab.sources.kubeproxy import service_port_rules
from tests.lab import apicluster as api
from tests.lab.test_kubeproxy_nftables import _nft_check

NODE_1 = NodeTopology("lab-node-1", "lab-zone-a")
NODE_2 = NodeTopology("lab-node-2", "lab-zone-b")
NODE_3 = NodeTopology("lab-node-3", "lab-zone-a")
NODES = (NODE_1, NODE_2, NODE_3)
ZONE = {n.name: n.zone for n in NODES}
NAME = "ns/backend:http"
IP = "10.96.0.20"


def _ep(ip: str, node: str, hints: tuple[str, ...] = ()) -> Endpoint:
    return Endpoint(
        ip,
        8000,
        f"pod-{ip}",
        True,
        True,
        False,
        node_name=node,
        zone=ZONE[node],
        hints_zones=(ZONE[node],) if "zone" in hints else (),
        hints_nodes=(node,) if "node" in hints else (),
    )


def _spr(*eps: Endpoint, local: bool = False, affinity: int | None = None) -> ServicePortRules:
    return ServicePortRules(NAME, IP, 8000, "TCP", tuple(eps), affinity, local)


def _lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


# --- internalTrafficPolicy: Local, iptables mode ------------------------------------------

LOCAL = _spr(
    _ep("10.244.1.2", "lab-node-1"),
    _ep("10.244.1.3", "lab-node-1"),
    _ep("10.244.2.2", "lab-node-2"),
    local=True,
)


def test_iptables_local_policy_jumps_to_an_svl_chain_of_the_local_endpoints() -> None:
    nat = render_nat([LOCAL], node=NODE_1)
    svl, svc = LOCAL.svl_chain, LOCAL.svc_chain
    assert svl.startswith("CIP-SVL-") and svl[8:] == svc[8:]  # kube-proxy: the same hash
    assert f":{svl} - [0:0]" in nat and svc not in nat
    (capture,) = _lines(nat, "-A CIP-SERVICES ")
    assert capture.endswith(f"-j {svl}") and f"-d {IP}/32" in capture
    rules = _lines(nat, f"-A {svl} ")
    assert "! -s 10.244.0.0/16" in rules[0] and rules[0].endswith("-j CIP-MARK-MASQ")
    a = sep_chain(NAME, "TCP", "10.244.1.2:8000")
    b = sep_chain(NAME, "TCP", "10.244.1.3:8000")
    assert rules[1].endswith(f"--probability 0.5000000000 -j {a}")
    assert rules[2].endswith(f"-j {b}") and len(rules) == 3
    assert "10.244.2.2" not in nat  # node 2's endpoint has no chain on node 1
    assert "has no" not in render_filter([LOCAL], node=NODE_1)


def test_iptables_local_policy_without_a_local_endpoint_drops() -> None:
    nat = render_nat([LOCAL], node=NODE_3)
    assert LOCAL.svl_chain not in nat and "CIP-SEP-" not in nat
    assert not _lines(nat, "-A CIP-SERVICES ")
    (drop,) = [line for line in render_filter([LOCAL], node=NODE_3).splitlines() if IP in line]
    assert drop == (
        f"-A CIP-SERVICES -d {IP}/32 -p tcp -m comment "
        f'--comment "{NAME} has no local endpoints" -m tcp --dport 8000 -j DROP'
    )


def test_iptables_local_policy_with_no_endpoint_anywhere_rejects() -> None:
    dead = _spr(local=True)
    (line,) = [ln for ln in render_filter([dead], node=NODE_1).splitlines() if IP in ln]
    assert "has no endpoints" in line and line.endswith(
        "-j REJECT --reject-with icmp-port-unreachable"
    )


def test_iptables_local_policy_keeps_session_affinity_in_the_svl_chain() -> None:
    sticky = _spr(*LOCAL.endpoints, local=True, affinity=600)
    rules = _lines(render_nat([sticky], node=NODE_2), f"-A {sticky.svl_chain} ")
    sep = sep_chain(NAME, "TCP", "10.244.2.2:8000")
    assert "--rcheck --seconds 600" in rules[1] and rules[1].endswith(f"-j {sep}")
    assert rules[2].endswith(f"-j {sep}") and len(rules) == 3


# --- internalTrafficPolicy: Local, nftables mode ------------------------------------------


def test_nftables_local_policy_goes_to_a_local_chain_of_the_local_endpoints() -> None:
    script = nftables.render([LOCAL], node=NODE_1)
    local = nftables.local_chain(LOCAL)
    assert local == "local-" + nftables.chain_base(LOCAL) and nftables.is_service_chain(local)
    assert nftables.service_chain(LOCAL) not in script
    t = f"ip {nftables.TABLE}"
    assert f"add element {t} service-ips {{ {IP} . tcp . 8000 : goto {local} }}" in script
    (pick,) = [line for line in script.splitlines() if "numgen" in line]
    assert pick.startswith(f"add rule {t} {local} numgen random mod 2 vmap")
    assert "10.244.1.2/8000" in pick and "10.244.1.3/8000" in pick
    assert "10.244.2.2" not in script


def test_nftables_local_policy_without_a_local_endpoint_drops() -> None:
    script = nftables.render([LOCAL], node=NODE_3)
    t = f"ip {nftables.TABLE}"
    assert (
        f'add element {t} no-endpoint-services {{ {IP} . tcp . 8000 comment "{NAME}" : drop }}'
        in script
    )
    assert f"service-ips {{ {IP}" not in script
    assert f"add chain {t} endpoint-" not in script
    dead = nftables.render([_spr(local=True)], node=NODE_3)
    assert f": goto {nftables.REJECT_CHAIN} }}" in dead


def test_nft_accepts_the_policy_scripts(tmp_path: Path) -> None:
    hinted = ServicePortRules(
        "ns/web:http", "10.96.0.21", 80, "TCP", (_ep("10.244.1.5", "lab-node-1", ("zone",)),)
    )
    for node in (NODE_1, NODE_3):
        _nft_check(nftables.render([LOCAL, hinted], node=node), tmp_path)


@pytest.mark.lab
def test_iptables_accepts_the_policy_rules(lab_host: None) -> None:
    restore = binaries()[1]
    for node in (NODE_1, NODE_3):
        for text in (render_nat([LOCAL], node=node), render_filter([LOCAL], node=node)):
            done = subprocess.run(
                [restore, "--test", "--noflush"], input=text, capture_output=True, text=True
            )
            assert done.returncode == 0, done.stderr + text


# --- topology hints in both modes ---------------------------------------------------------

HINTED = _spr(
    _ep("10.244.1.2", "lab-node-1", ("zone", "node")),
    _ep("10.244.2.2", "lab-node-2", ("zone", "node")),
    _ep("10.244.3.2", "lab-node-3", ("zone", "node")),
)


def test_iptables_hints_leave_only_the_chosen_endpoints_in_the_svc_chain() -> None:
    nat = render_nat([HINTED], node=NODE_2)
    picks = [line for line in _lines(nat, f"-A {HINTED.svc_chain} ") if "CIP-SEP-" in line]
    assert picks == [
        f'-A {HINTED.svc_chain} -m comment --comment "{NAME} -> 10.244.2.2:8000" '
        f"-j {sep_chain(NAME, 'TCP', '10.244.2.2:8000')}"
    ]
    assert "10.244.1.2" not in nat and "10.244.3.2" not in nat


def test_nftables_hints_leave_only_the_chosen_endpoints_in_the_service_chain() -> None:
    script = nftables.render([HINTED], node=NODE_1)
    (pick,) = [line for line in script.splitlines() if "numgen" in line]
    assert "mod 1 " in pick and "10.244.1.2/8000" in pick
    assert "10.244.2.2" not in script and "10.244.3.2" not in script


def test_without_a_policy_the_node_changes_nothing() -> None:
    # The one-node lab's rules are the same whichever node renders them.
    plain = _spr(_ep("10.244.1.2", "lab-node-1"), _ep("10.244.2.2", "lab-node-2"))
    assert render_nat([plain], node=NODE_1) == render_nat([plain], node=NODE_2)
    assert nftables.render([plain], node=NODE_1) == nftables.render([plain], node=NODE_3)
    assert render_nat([plain]) == render_nat([plain], node=NODE_1)


@pytest.mark.parametrize("mode_class", [IptablesMode, NftablesMode])
def test_a_proxier_renders_for_its_own_node(mode_class: type) -> None:
    ran: list[Apply] = []
    proxier = Proxier(mode_class(), 1.0, lambda rules, took: None, run=ran.append, node=NODE_2)
    proxier.update([HINTED])
    proxier.sync_now()
    text = "".join(a.text for a in ran)
    assert "10.244.2.2" in text and "10.244.1.2" not in text
    fresh = mode_class().render(ProxyState((HINTED,), NODE_2), 0.0)
    assert [a.text for a in ran] == [a.text for a in fresh]


def test_a_proxier_resyncs_when_the_endpoints_it_picks_change() -> None:
    proxier = Proxier(
        IptablesMode(), 1.0, lambda rules, took: None, run=lambda a: None, node=NODE_2
    )
    proxier.update([LOCAL])
    proxier.sync_now()
    synced = proxier.applied_key
    # Another node gains an endpoint: node 2's rules stay, no sync is needed.
    proxier.update([_spr(*LOCAL.endpoints, _ep("10.244.3.9", "lab-node-3"), local=True)])
    assert proxier.wanted_key == synced
    # Node 2 loses its own: its Local rules change.
    proxier.update([_spr(*LOCAL.endpoints[:2], local=True)])
    assert proxier.wanted_key != synced


# --- three nodes: which pods answer, from which node --------------------------------------

BACKENDS = {"backend-a1": "lab-node-1", "backend-a2": "lab-node-1", "backend-b": "lab-node-2"}


def _three_node_store(**spec: Any) -> Store:
    """Three nodes over two zones; backend pods on nodes 1 and 2, none on node 3."""
    store = Store()
    bootstrap.populate(store, 6443, nodes=3)
    ports = [{"name": "http", "port": 8000, "targetPort": 8000}]
    api.service(store, "backend", ports, "backend", **spec)
    for i, (pod, node) in enumerate(sorted(BACKENDS.items())):
        api.pod(store, pod, "backend", f"10.244.{node[-1]}.{10 + i}", nodeName=node)
    api.settle(store)
    return store


def _iptables_shares(nat: str, filt: str, ip: str) -> dict[str, float]:
    """Each DNAT target's share of new connections to `ip`, walking the random picks."""
    capture = [line for line in _lines(nat, "-A CIP-SERVICES ") if f"-d {ip}/32" in line]
    if not capture:
        verdicts = [ln.split()[-1] for ln in filt.splitlines() if f"-d {ip}/32" in ln]
        return {verdicts[0] if verdicts[0] == "DROP" else "REJECT": 1.0}
    chain = capture[0].split()[-1]
    left, shares = 1.0, {}
    for line in _lines(nat, f"-A {chain} "):
        if "CIP-SEP-" not in line or "--rcheck" in line:
            continue
        words = line.split()
        p = float(words[words.index("--probability") + 1]) if "--probability" in words else 1.0
        sep = words[-1]
        (dnat,) = [ln for ln in _lines(nat, f"-A {sep} ") if "--to-destination" in ln]
        shares[dnat.split()[-1].split(":")[0]] = left * p
        left -= left * p
    return shares


def _nftables_shares(script: str, ip: str) -> dict[str, float]:
    t = f"ip {nftables.TABLE}"
    found = [
        ln for ln in script.splitlines() if ln.startswith(f"add element {t} service-ips {{ {ip} ")
    ]
    if not found:
        (element,) = [ln for ln in script.splitlines() if f"no-endpoint-services {{ {ip} " in ln]
        return {"DROP" if element.endswith(": drop }") else "REJECT": 1.0}
    chain = found[0].split("goto ")[1].rstrip(" }")
    (pick,) = [ln for ln in script.splitlines() if ln.startswith(f"add rule {t} {chain} numgen")]
    targets = [part.split("goto ")[1].strip(" }") for part in pick.split(" , ")]
    shares = {}
    for endpoint in targets:
        (dnat,) = [
            ln
            for ln in script.splitlines()
            if ln.startswith(f"add rule {t} {endpoint} ") and "dnat" in ln
        ]
        shares[dnat.split("dnat to ")[1].split(":")[0]] = 1.0 / len(targets)
    return shares


def _answers(store: Store, mode: str) -> dict[str, dict[str, float]]:
    """node → {pod or DROP/REJECT: share of new connections to backend's ClusterIP}."""
    rules = service_port_rules(*api.services_and_slices(store))
    (backend,) = [r for r in rules if r.port_name == "default/backend:http"]
    pods = {p["status"]["podIP"]: p["metadata"]["name"] for p in api.listed(store, "pods")}
    seen = {}
    for node in NODES:
        if mode == "iptables":
            nat, filt = render_nat(rules, node=node), render_filter(rules, node=node)
            shares = _iptables_shares(nat, filt, backend.cluster_ip)
        else:
            shares = _nftables_shares(nftables.render(rules, node=node), backend.cluster_ip)
        seen[node.name] = {pods.get(k, k): round(v, 6) for k, v in shares.items()}
    return seen


THIRD, HALF = round(1 / 3, 6), 0.5
EXPECTED = {
    # Every node balances over every pod.
    "Cluster": {
        n.name: {"backend-a1": THIRD, "backend-a2": THIRD, "backend-b": THIRD} for n in NODES
    },
    # Each node over its own pods; node 3 has none and drops.
    "internalTrafficPolicy: Local": {
        "lab-node-1": {"backend-a1": HALF, "backend-a2": HALF},
        "lab-node-2": {"backend-b": 1.0},
        "lab-node-3": {"DROP": 1.0},
    },
    # Each node over its zone's pods: node 3 shares zone a with node 1.
    "PreferSameZone": {
        "lab-node-1": {"backend-a1": HALF, "backend-a2": HALF},
        "lab-node-2": {"backend-b": 1.0},
        "lab-node-3": {"backend-a1": HALF, "backend-a2": HALF},
    },
    # Each node over its own pods; node 3 has none and falls back to its zone.
    "PreferSameNode": {
        "lab-node-1": {"backend-a1": HALF, "backend-a2": HALF},
        "lab-node-2": {"backend-b": 1.0},
        "lab-node-3": {"backend-a1": HALF, "backend-a2": HALF},
    },
}
SPECS: dict[str, dict[str, str]] = {
    "Cluster": {},
    "internalTrafficPolicy: Local": {"internalTrafficPolicy": "Local"},
    "PreferSameZone": {"trafficDistribution": "PreferSameZone"},
    "PreferSameNode": {"trafficDistribution": "PreferSameNode"},
}


@pytest.mark.parametrize("mode", ["iptables", "nftables"])
@pytest.mark.parametrize("policy", list(SPECS))
def test_which_pods_answer_from_which_node(policy: str, mode: str) -> None:
    assert _answers(_three_node_store(**SPECS[policy]), mode) == EXPECTED[policy]


def test_prefer_close_is_prefer_same_zone() -> None:
    store = _three_node_store(trafficDistribution="PreferClose")
    assert _answers(store, "iptables") == EXPECTED["PreferSameZone"]


def test_a_hinted_pod_that_goes_unready_gives_its_node_back_to_its_zone() -> None:
    store = _three_node_store(trafficDistribution="PreferSameNode")
    api.start(store, "backend-b", "10.244.2.12", ready=False)
    api.settle(store)
    # Node 2's only pod is not ready: node hints no longer name node 2, and zone b has
    # nobody either, so node 2 balances over every ready pod.
    seen = _answers(store, "nftables")
    assert seen["lab-node-2"] == {"backend-a1": HALF, "backend-a2": HALF}
    assert seen["lab-node-1"] == {"backend-a1": HALF, "backend-a2": HALF}


def test_the_hints_read_here_are_the_controllers() -> None:
    # Guard: the hints above are the EndpointSlice controller's, not the test's.
    store = _three_node_store(trafficDistribution="PreferSameNode")
    (slice_,) = [
        s
        for s in api.listed(store, "endpointslices", "discovery.k8s.io")
        if s["metadata"]["labels"].get(endpointslice.SERVICE_NAME) == "backend"
    ]
    by_pod = {e["targetRef"]["name"]: e for e in slice_["endpoints"]}
    assert by_pod["backend-b"]["hints"] == {
        "forZones": [{"name": "lab-zone-b"}],
        "forNodes": [{"name": "lab-node-2"}],
    }
    assert by_pod["backend-a1"]["zone"] == "lab-zone-a"
