"""The CNI's loop (lab/cni/applier.py): what it hands to iptables-restore, and when; no root.

The restore is recorded instead of run: what is checked is the text, the
chains the applier remembers, and that a failed write is retried.
"""

from __future__ import annotations

import asyncio

import pytest

from lab.cni import applier
from lab.cni.applier import PolicyApplier
from lab.cni.policy import PodRef, Policy, compile_policies
from lab.cni.rules import render
from lab.iptables import IptablesError
from lab.manifests import Selector
from lab.naming import host_iface

POD = PodRef("redis-0", "ns", "10.244.1.5", host_iface("redis-0"), {"app": "redis"})
DENY_ALL = Policy("deny", "ns", Selector.parse({}), ingress=(), egress=None)


class Restore:
    def __init__(self, failures: int = 0) -> None:
        self.texts: list[str] = []
        self.failures = failures

    def __call__(self, text: str) -> None:
        if self.failures:
            self.failures -= 1
            raise IptablesError("iptables-restore failed: line 2 failed")
        self.texts.append(text)


def test_a_sync_writes_the_wanted_rules_and_deletes_what_went() -> None:
    restore = Restore()
    cni = PolicyApplier(restore)
    cni.sync_now()  # at start-up: the chains exist before any pod does
    assert restore.texts == [render()] and cni.synced and cni.syncs == 1
    chains, rules = compile_policies([DENY_ALL], [POD], {})
    cni.update(chains, rules)
    assert not cni.synced
    cni.sync_now()
    assert restore.texts[-1] == render(chains, rules)
    cni.update((), ())
    cni.sync_now()
    assert f"-X {chains[0]}" in restore.texts[-1].splitlines()
    assert cni.chains == {"CIP-CNI-FORWARD", "CIP-NETPOL"}


def test_the_loop_syncs_on_a_change_and_retries_a_failed_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(applier, "RETRY_AFTER", 0.01)
    restore = Restore(failures=1)
    errors: list[str] = []
    cni = PolicyApplier(restore, errors.append)
    chains, rules = compile_policies([DENY_ALL], [POD], {})

    async def main() -> None:
        loop = asyncio.create_task(cni.run())
        cni.update(chains, rules)
        await cni.wait_synced()
        loop.cancel()

    asyncio.run(asyncio.wait_for(main(), 10))
    assert errors == ["iptables-restore failed: line 2 failed"]
    assert restore.texts == [render(chains, rules)] and cni.syncs == 1
