"""One Proxier, two modes (lab/kubeproxy/proxier.py), and sessionAffinity in iptables mode.

The commands a sync runs are collected instead of run: what is checked is
the text and the order the Proxier hands them over in, and what it
remembers when a command fails.
"""

from __future__ import annotations

import pytest

from lab.kubeproxy import nftables
from lab.kubeproxy.iptables import HOOKS, IptablesMode, render_filter, render_nat
from lab.kubeproxy.model import (
    Apply,
    Endpoint,
    ProxyError,
    ProxyMode,
    ProxyState,
    ServicePortRules,
    sep_chain,
)
from lab.kubeproxy.nftables import NftablesMode
from lab.kubeproxy.proxier import Proxier


def _ep(ip: str) -> Endpoint:
    return Endpoint(ip, 8000, f"pod-{ip}", True, True, False)


def _spr(*eps: Endpoint, affinity: int | None = None) -> ServicePortRules:
    return ServicePortRules("ns/backend:http", "10.96.0.20", 8000, "TCP", tuple(eps), affinity)


# --- sessionAffinity: ClientIP in iptables mode ----------------------------------------------


def test_iptables_affinity_is_kube_proxys_recent_match() -> None:
    a, b = _ep("10.244.1.2"), _ep("10.244.1.3")
    spr = _spr(a, b, affinity=600)
    lines = render_nat([spr]).splitlines()
    svc = spr.svc_chain
    sep_a = sep_chain(spr.port_name, "TCP", "10.244.1.2:8000")
    svc_rules = [line for line in lines if line.startswith(f"-A {svc} ")]
    # After the masquerade rule: one `--rcheck` per endpoint, then the random picks.
    assert "CIP-MARK-MASQ" in svc_rules[0]
    assert svc_rules[1] == (
        f'-A {svc} -m comment --comment "ns/backend:http -> 10.244.1.2:8000" '
        f"-m recent --name {sep_a} --rcheck --seconds 600 --reap -j {sep_a}"
    )
    assert "--rcheck" in svc_rules[2] and "statistic" in svc_rules[3]
    dnat = next(line for line in lines if line.startswith(f"-A {sep_a} ") and "DNAT" in line)
    assert f"-m recent --name {sep_a} --set" in dnat
    assert dnat.endswith("--to-destination 10.244.1.2:8000")


def test_iptables_without_affinity_is_unchanged() -> None:
    text = render_nat([_spr(_ep("10.244.1.2"), _ep("10.244.1.3"))])
    assert "recent" not in text


# --- the two modes behind one interface --------------------------------------------------------


def test_iptables_mode_renders_what_it_always_did() -> None:
    mode: ProxyMode = IptablesMode("iptables-restore")
    state = ProxyState((_spr(_ep("10.244.1.2")),))
    nat, filt = mode.render(state, now=0.0)
    assert nat == Apply(("iptables-restore", "--noflush"), render_nat(state.ports))
    assert filt.text == render_filter(state.ports)
    assert mode.hooks == HOOKS
    assert mode.cleanup_script() == ()


def test_iptables_mode_deletes_chains_it_wrote_before() -> None:
    mode = IptablesMode()
    old = ProxyState((_spr(_ep("10.244.1.2")),))
    mode.applied(mode.render(old, 0.0), 0.0)
    nat, _ = mode.render(ProxyState(), 1.0)
    assert f"-X {old.ports[0].svc_chain}" in nat.text.splitlines()


def test_nftables_mode_writes_one_nft_transaction_and_nothing_in_iptables() -> None:
    mode: ProxyMode = NftablesMode("nft")
    state = ProxyState((_spr(_ep("10.244.1.2")),))
    (script,) = mode.render(state, now=0.0)
    assert script.argv == ("nft", "-f", "-")
    assert script.text == nftables.render(state.ports)
    # The table's base chains hook into netfilter themselves; the NetworkPolicies are the
    # CNI's (lab/cni/), in iptables whatever kube-proxy's mode.
    assert mode.hooks == ()
    (cleanup,) = mode.cleanup_script()
    assert cleanup.text == (f"add table ip {nftables.TABLE}\ndelete table ip {nftables.TABLE}\n")
    assert mode.rules_commands() == (("nft", "list", "table", "ip", nftables.TABLE),)


# --- the Proxier ----------------------------------------------------------------------------------


class Recorder:
    def __init__(self, fail_on: int | None = None) -> None:
        self.ran: list[Apply] = []
        self.fail_on = fail_on

    def __call__(self, apply: Apply) -> None:
        if self.fail_on is not None and len(self.ran) == self.fail_on:
            raise ProxyError("nft: Error: Could not process rule")
        self.ran.append(apply)


@pytest.mark.parametrize("mode_class", [IptablesMode, NftablesMode])
def test_a_sync_runs_every_command_in_order(mode_class: type) -> None:
    runner = Recorder()
    proxier = Proxier(mode_class(), 1.0, lambda rules, took: None, run=runner)
    proxier.update([_spr(_ep("10.244.1.2"), affinity=30)])
    proxier.sync_now()
    assert [a.argv[0] for a in runner.ran] == [
        a.argv[0] for a in proxier.mode.render(ProxyState(proxier.wanted), 0.0)
    ]
    assert proxier.applied_key == proxier.wanted_key and proxier.syncs == 1


def test_a_failed_sync_changes_nothing_the_proxier_remembers() -> None:
    mode = NftablesMode()
    proxier = Proxier(mode, 1.0, lambda rules, took: None, run=Recorder(fail_on=0))
    proxier.update([_spr(_ep("10.244.1.2"))])
    with pytest.raises(ProxyError):
        proxier.sync_now()
    assert proxier.applied_key is None and mode.chains == set() and proxier.syncs == 0


def test_affinity_changes_need_a_sync() -> None:
    proxier = Proxier(IptablesMode(), 1.0, lambda rules, took: None, run=Recorder())
    proxier.update([_spr(_ep("10.244.1.2"))])
    proxier.sync_now()
    before = proxier.applied_key
    proxier.update([_spr(_ep("10.244.1.2"), affinity=60)])
    assert proxier.wanted_key != before
