"""kube-proxy's nftables mode as the lab writes it (lab/kubeproxy/nftables.py): no root needed.

The golden lines come from kubernetes/kubernetes pkg/proxy/nftables/proxier_test.go
(TestOverallNFTablesRules): for the same Services and endpoints the lab must
write the same chains, sets, maps and rules, in its own table and with its
own pod range. Where `nft` is installed, `nft -c` (check mode: parse and
validate against the kernel, apply nothing) checks the scripts too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from lab.api.controllers import endpointslice
from lab.kubeproxy import nftables
from lab.kubeproxy.model import Endpoint, ProxyState, ServicePortRules
from lab.kubeproxy.nftables import NftablesMode
from lab.manifests import render
from lab.sources.kubeproxy import service_port_rules
from tests.conftest import missing
from tests.lab import apicluster as api


def _ep(ip: str, port: int = 80, ready: bool = True) -> Endpoint:
    return Endpoint(ip, port, f"pod-{ip}", ready, ready, False)


def _spr(
    name: str, ip: str, *eps: Endpoint, affinity: int | None = None, port: int = 80
) -> ServicePortRules:
    return ServicePortRules(name, ip, port, "TCP", tuple(eps), affinity)


def _kube_proxy(text: str) -> set[str]:
    """kube-proxy's expected lines, in the lab's table and with the lab's pod range."""
    lines = {line.strip() for line in text.strip().splitlines() if line.strip()}
    return {
        line.replace("ip kube-proxy ", f"ip {nftables.TABLE} ").replace(
            "10.0.0.0/8", "10.244.0.0/16"
        )
        for line in lines
    }


def _service_lines(script: str, needle: str) -> set[str]:
    return {line for line in script.splitlines() if needle in line}


# --- names ----------------------------------------------------------------------------------


def test_names_are_kube_proxys() -> None:
    spr = _spr("ns1/svc1:p80", "172.30.0.41", _ep("10.180.0.1"))
    assert nftables.service_chain(spr) == "service-ULMVA6XW-ns1/svc1/tcp/p80"
    assert (
        nftables.endpoint_chain(spr, "10.180.0.1", 80)
        == "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
    )
    sticky = _spr("ns5/svc5:p80", "172.30.0.45", _ep("10.180.0.3"))
    assert (
        nftables.affinity_set(sticky, "10.180.0.3", 80)
        == "affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80"
    )
    # An unnamed port: kube-proxy's ServicePortName has an empty Port.
    unnamed = _spr("ns/web", "10.96.0.9")
    assert nftables.service_chain(unnamed).endswith("-ns/web/tcp/")


# --- the same lines kube-proxy writes -------------------------------------------------------


def test_one_endpoint_as_kube_proxy_writes_it() -> None:
    script = nftables.render([_spr("ns1/svc1:p80", "172.30.0.41", _ep("10.180.0.1"))])
    expected = _kube_proxy("""
        add chain ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80
        add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 ip daddr 172.30.0.41 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
        add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 }
        add chain ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80
        add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 ip saddr 10.180.0.1 jump mark-for-masquerade
        add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 meta l4proto tcp dnat to 10.180.0.1:80
        add element ip kube-proxy cluster-ips { 172.30.0.41 }
        add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }
    """)  # noqa: E501
    assert _service_lines(script, "svc1") | _service_lines(script, "172.30.0.41") == expected


def test_session_affinity_as_kube_proxy_writes_it() -> None:
    spr = _spr("ns5/svc5:p80", "172.30.0.45", _ep("10.180.0.3"), affinity=10800)
    script = nftables.render([spr])
    expected = _kube_proxy("""
        add set ip kube-proxy affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 { type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }
        add chain ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80
        add rule ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80 ip daddr 172.30.0.45 tcp dport 80 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
        add rule ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80 ip saddr @affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 goto endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80
        add rule ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 }
        add chain ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80
        add rule ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 ip saddr 10.180.0.3 jump mark-for-masquerade
        add rule ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 update @affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 { ip saddr }
        add rule ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 meta l4proto tcp dnat to 10.180.0.3:80
        add element ip kube-proxy cluster-ips { 172.30.0.45 }
        add element ip kube-proxy service-ips { 172.30.0.45 . tcp . 80 : goto service-HVFWP5L3-ns5/svc5/tcp/p80 }
    """)  # noqa: E501
    assert _service_lines(script, "svc5") | _service_lines(script, "172.30.0.45") == expected


def test_no_endpoints_as_kube_proxy_writes_it() -> None:
    script = nftables.render([_spr("ns6/svc6:p80", "172.30.0.46")])
    expected = _kube_proxy("""
        add element ip kube-proxy cluster-ips { 172.30.0.46 }
        add element ip kube-proxy no-endpoint-services { 172.30.0.46 . tcp . 80 comment "ns6/svc6:p80" : goto reject-chain }
    """)  # noqa: E501
    assert _service_lines(script, "svc6") | _service_lines(script, "172.30.0.46") == expected
    assert "service-" not in "".join(_service_lines(script, "svc6"))


def test_the_fixed_part_is_kube_proxys_plus_the_labs_fences() -> None:
    lines = set(nftables.render([]).splitlines())
    t = f"ip {nftables.TABLE}"
    for line in (
        f"add map {t} service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ;"
        ' comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }',
        f"add rule {t} services ip daddr . meta l4proto . th dport vmap @service-ips",
        f"add rule {t} service-endpoints-check ip daddr . meta l4proto . th dport"
        " vmap @no-endpoint-services",
        f"add rule {t} mark-for-masquerade mark set mark or 0x4000",
        f"add rule {t} masquerading mark and 0x4000 == 0 return",
        f"add rule {t} masquerading mark set mark xor 0x4000",
        f"add rule {t} masquerading masquerade fully-random",
        f"add rule {t} reject-chain reject",
        f"add rule {t} cluster-ips-check ip daddr @cluster-ips reject"
        ' comment "Reject traffic to invalid ports of ClusterIPs"',
        f"add rule {t} cluster-ips-check ip daddr {{ 10.96.0.0/12 }} drop"
        ' comment "Drop traffic to unallocated ClusterIPs"',
        f"add chain {t} nat-prerouting {{ type nat hook prerouting priority -100 ; }}",
        f"add chain {t} nat-postrouting {{ type nat hook postrouting priority 100 ; }}",
        f"add chain {t} filter-forward {{ type filter hook forward priority 0 ; }}",
        # The lab's hooks are narrowed to its own traffic, as in iptables mode.
        f'add rule {t} nat-prerouting iifname "cip*" jump services',
        f"add rule {t} nat-output ip daddr 10.96.0.0/12 jump services",
        f'add rule {t} nat-postrouting oifname "cip*" jump masquerading',
        # The lab's fences: nothing of the lab's leaves through another interface.
        f"add rule {t} filter-forward jump lab-forward",
        f'add rule {t} lab-forward iifname "cip*" oifname != "cip*" drop'
        ' comment "lab traffic never leaves the lab\'s interfaces"',
        f'add rule {t} lab-forward iifname != "cip*" oifname "cip*" drop'
        ' comment "lab traffic never leaves the lab\'s interfaces"',
        f'add rule {t} lab-forward ip daddr 10.96.0.0/12 oifname != "cip*" drop'
        ' comment "lab traffic never leaves the lab\'s interfaces"',
        f'add rule {t} lab-forward ip saddr 10.244.0.0/16 oifname != "cip*" drop'
        ' comment "lab traffic never leaves the lab\'s interfaces"',
        f'add rule {t} filter-input iifname "cip*" jump lab-input',
        f'add rule {t} lab-input reject comment "pods may not open connections to the host"',
    ):
        assert line in lines, line


def test_one_transaction_that_rewrites_every_rule() -> None:
    lines = nftables.render([_spr("ns/a:p", "10.96.0.20", _ep("10.244.1.2"))]).splitlines()
    t = f"ip {nftables.TABLE}"
    assert lines[0].startswith(f"add table {t} ")
    assert lines[1] == f"flush table {t}"
    # The maps and the ClusterIP set are rebuilt in full; affinity sets are not flushed.
    assert {f"flush map {t} service-ips", f"flush map {t} no-endpoint-services"} <= set(lines)
    assert f"flush set {t} cluster-ips" in lines
    assert not any(line.startswith(f"flush set {t} affinity-") for line in lines)
    # Everything is in the lab's table, never in kube-proxy's.
    assert all(f" {t} " in f"{line} " for line in lines)
    assert "ip kube-proxy" not in "\n".join(lines)


# --- 0, 1, 3 endpoints; affinity on and off ------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 3])
@pytest.mark.parametrize("affinity", [None, 60])
def test_endpoints_and_affinity(n: int, affinity: int | None) -> None:
    eps = [_ep(f"10.244.1.{i + 2}", 8000) for i in range(n)]
    spr = _spr("ns/backend:http", "10.96.0.20", *eps, affinity=affinity, port=8000)
    script = nftables.render([spr])
    svc = nftables.service_chain(spr)
    dnats = [line for line in script.splitlines() if " dnat to " in line]
    assert len(dnats) == n
    assert sorted(line.split()[-1] for line in dnats) == [f"{e.ip}:8000" for e in eps]
    if n == 0:
        assert svc not in script
        assert "10.96.0.20 . tcp . 8000 comment" in script and "goto reject-chain" in script
        assert "affinity-" not in script
        return
    picks = next(line for line in script.splitlines() if "numgen random" in line)
    assert picks.startswith(f"add rule ip {nftables.TABLE} {svc} numgen random mod {n} vmap {{")
    for i, ep in enumerate(eps):
        assert f"{i} : goto {nftables.endpoint_chain(spr, ep.ip, 8000)}" in picks
    # Every chain is declared before the first rule that jumps to it.
    order = script.splitlines()
    for ep in eps:
        chain = nftables.endpoint_chain(spr, ep.ip, 8000)
        declared = order.index(f"add chain ip {nftables.TABLE} {chain}")
        assert declared < order.index(picks)
    sets = nftables.declared_sets(script)
    updates = [line for line in script.splitlines() if " update @" in line]
    lookups = [line for line in script.splitlines() if " ip saddr @affinity-" in line]
    if affinity is None:
        assert sets == [] and updates == [] and lookups == []
    else:
        assert len(sets) == len(updates) == len(lookups) == n
        declared = [line for line in order if line.startswith(f"add set ip {nftables.TABLE} aff")]
        assert all(f"timeout {affinity}s" in line for line in declared)
        # The lookups come before the random pick, so a known client goes back.
        assert max(order.index(line) for line in lookups) < order.index(picks)


def test_not_ready_endpoints_are_left_out_as_in_iptables_mode() -> None:
    spr = _spr("ns/a:p", "10.96.0.20", _ep("10.244.1.2"), _ep("10.244.1.3", ready=False))
    script = nftables.render([spr])
    assert "dnat to 10.244.1.2:80" in script and "10.244.1.3" not in script


# --- the real manifests, a headless Service ---------------------------------------------------


def _lab_rules() -> list[ServicePortRules]:
    """What kube-proxy reads once the real manifests are applied, before any pod runs:
    the app's Services, plus `default/kubernetes` and kube-dns that every cluster has."""
    store = api.cluster()
    api.apply(store, [d for d in yaml.safe_load_all(render()) if d])
    endpointslice.reconcile(store)
    return service_port_rules(*api.services_and_slices(store))


@pytest.fixture(scope="module")
def real_rules() -> list[ServicePortRules]:
    if shutil.which("kubectl") is None:
        missing("kubectl is not installed: the lab renders k8s/ with `kubectl kustomize`")
    return _lab_rules()


def test_the_real_manifests_in_nftables_mode(real_rules: list[ServicePortRules]) -> None:
    names = {r.port_name for r in real_rules}
    assert {"clusterip-demo/backend:http", "clusterip-demo/frontend:http"} <= names
    assert ("kube-system/kube-dns:dns", "UDP") in {(r.port_name, r.protocol) for r in real_rules}
    with_pods = [
        ServicePortRules(r.port_name, r.cluster_ip, r.port, r.protocol, (_ep("10.244.1.2", 8000),))
        for r in real_rules
    ]
    script = nftables.render(with_pods)
    for rule in real_rules:
        proto = rule.protocol.lower()
        key = f"{rule.cluster_ip} . {proto} . {rule.port} : goto {nftables.service_chain(rule)}"
        assert key in script
    # Before any pod is ready every Service rejects: the no-endpoints map holds them all.
    # Only the API server's own `kubernetes` has an endpoint: the API server itself.
    without = [r for r in real_rules if r.port_name != "default/kubernetes:https"]
    assert len(without) == len(real_rules) - 1
    empty = nftables.render(real_rules)
    assert empty.count("goto reject-chain }") == len(without)
    assert "service-" in "".join(_service_lines(empty, "default/kubernetes"))


def test_a_headless_service_gets_no_rules() -> None:
    store = api.cluster()
    api.create(store, "namespaces", {"metadata": {"name": "ns"}})
    for name, ip in (("db", "10.96.0.50"), ("db-headless", "None")):
        api.create(
            store,
            "services",
            {
                "metadata": {"name": name, "namespace": "ns"},
                "spec": {
                    "clusterIP": ip,
                    "selector": {"app": "db"},
                    "ports": [{"name": "db", "port": 3306}],
                    "sessionAffinity": "ClientIP",
                    **({"publishNotReadyAddresses": True} if ip == "None" else {}),
                },
            },
        )
    api.pod(store, "db-0", "db", "10.244.1.5", namespace="ns")
    api.settle(store)
    assert api.service_object(store, "ns", "db-headless")["spec"]["clusterIP"] == "None"
    # The headless Service has its EndpointSlice (the DNS answers from it), but no rule.
    slices = api.listed(store, "endpointslices", "discovery.k8s.io")
    assert "db-headless" in {
        s["metadata"]["labels"].get("kubernetes.io/service-name") for s in slices
    }
    rules = [
        r
        for r in service_port_rules(*api.services_and_slices(store))
        if r.port_name.startswith("ns/")
    ]
    assert [r.port_name for r in rules] == ["ns/db:db"]
    assert rules[0].affinity_timeout == 10800
    assert [e.ip for e in rules[0].endpoints] == ["10.244.1.5"]
    assert "db-headless" not in nftables.render(rules)


# --- stale chains and sets across syncs -----------------------------------------------------


def test_stale_chains_are_deleted_a_sync_later_and_stale_sets_at_once() -> None:
    mode = NftablesMode()
    a, b = _ep("10.244.1.2"), _ep("10.244.1.3")
    two = ProxyState((_spr("ns/s:p", "10.96.0.20", a, b, affinity=60),))
    one = ProxyState((_spr("ns/s:p", "10.96.0.20", a),))
    spr = two.ports[0]
    gone = nftables.endpoint_chain(spr, b.ip, b.port)

    first = mode.render(two, now=100.0)
    mode.applied(first, now=100.0)
    assert len(mode.sets) == 2 and gone in mode.chains

    second = mode.render(one, now=101.0)
    script = second[0].text
    # The chain is emptied (flush table) and unreferenced now, deleted next time.
    assert f"delete chain ip {nftables.TABLE} {gone}" not in script
    # No Service uses the affinity sets any more: they go at once.
    assert script.count(f"delete set ip {nftables.TABLE} affinity-") == 2
    mode.applied(second, now=101.0)
    assert mode.sets == set() and gone in mode.stale_since

    early = mode.render(one, now=101.5)[0].text
    assert f"delete chain ip {nftables.TABLE} {gone}" not in early
    third = mode.render(one, now=102.5)
    assert f"delete chain ip {nftables.TABLE} {gone}" in third[0].text
    mode.applied(third, now=102.5)
    assert gone not in mode.chains and gone not in mode.stale_since

    # A chain wanted again before its deletion is kept.
    mode.applied(mode.render(one, now=103.0), now=103.0)
    mode.applied(mode.render(two, now=103.5), now=103.5)
    assert mode.stale_since == {}


# --- nft itself checks the scripts ------------------------------------------------------------


def _nft_check(script: str, tmp_path: Path) -> None:
    nft = shutil.which("nft")
    if nft is None:
        missing("nft is not installed (apt-get install nftables)")
    if os.geteuid() != 0:
        pytest.skip("nft -c needs CAP_NET_ADMIN (root)")
    path = tmp_path / "rules.nft"
    path.write_text(script)
    # -c: parse and validate, never apply.
    done = subprocess.run([nft, "-c", "-f", str(path)], capture_output=True, text=True)
    if done.returncode != 0 and "Operation not permitted" in done.stderr:
        pytest.skip(f"nft -c is not permitted here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("affinity", [None, 10800])
def test_nft_accepts_the_scripts(affinity: int | None, tmp_path: Path) -> None:
    eps = [_ep(f"10.244.1.{i}", 8000) for i in (2, 3, 4)]
    script = nftables.render(
        [
            _spr("ns/backend:http", "10.96.0.20", *eps, affinity=affinity, port=8000),
            _spr("ns/redis:redis", "10.96.0.30", port=6379),
            _spr("ns/web", "10.96.0.31", eps[0]),
        ]
    )
    _nft_check(script, tmp_path)


def test_nft_accepts_the_real_manifests_rules(
    real_rules: list[ServicePortRules], tmp_path: Path
) -> None:
    with_pods = [
        ServicePortRules(r.port_name, r.cluster_ip, r.port, r.protocol, (_ep("10.244.1.9", 80),))
        for r in real_rules
    ]
    _nft_check(nftables.render(with_pods), tmp_path)
    _nft_check(nftables.cleanup_script(), tmp_path)
