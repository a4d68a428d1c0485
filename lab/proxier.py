"""kube-proxy: turns endpoints into iptables rules, at most once per min-sync period.

Like kube-proxy's BoundedFrequencyRunner: a change is applied at once if the
last sync was longer ago than `min_sync_period`, otherwise as soon as that
period is over; changes that arrive meanwhile are applied together.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from lab.iptables import Iptables, IptablesError, ServicePortRules, render_filter, render_nat


class Proxier:
    def __init__(
        self,
        ipt: Iptables,
        min_sync_period: float,
        on_sync: Callable[[Sequence[ServicePortRules], float], None],
        on_error: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.ipt = ipt
        self.min_sync_period = min_sync_period
        self.on_sync = on_sync
        self.on_error = on_error
        self.wanted: tuple[ServicePortRules, ...] = ()
        # NetworkPolicy enforcement: CIP-NP-* chains and the rules of them and CIP-NETPOL.
        self.netpol: tuple[tuple[str, ...], tuple[tuple[str, ...], ...]] = ((), ())
        self.wanted_key: tuple[object, ...] = ()
        self.applied_key: tuple[object, ...] | None = None
        self.chains: dict[str, set[str]] = {"nat": set(), "filter": set()}
        self.last_sync = 0.0
        self.syncs = 0
        self._changed = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def update(
        self,
        rules: Sequence[ServicePortRules],
        netpol: tuple[Sequence[str], Sequence[Sequence[str]]] = ((), ()),
    ) -> None:
        self.wanted = tuple(sorted(rules, key=lambda r: (r.port_name, r.protocol)))
        self.netpol = (tuple(netpol[0]), tuple(tuple(r) for r in netpol[1]))
        # Only what the rules are made of counts: an endpoint whose conditions
        # change without changing whether it is used needs no sync.
        key = (*(_key(r) for r in self.wanted), self.netpol)
        if key != self.wanted_key:
            self.wanted_key = key
            if key != self.applied_key:
                self._idle.clear()
                self._changed.set()

    def sync_now(self) -> None:
        """Write the rules for what is wanted now (blocking): used at start-up."""
        rules, key, (np_chains, np_rules) = self.wanted, self.wanted_key, self.netpol
        nat = render_nat(rules, self.chains["nat"])
        filt = render_filter(
            rules, self.chains["filter"], netpol_rules=np_rules, netpol_chains=np_chains
        )
        self.ipt.restore(nat)
        self.ipt.restore(filt)
        self.chains = {"nat": _declared(nat), "filter": _declared(filt)}
        self.applied_key = key
        self.last_sync = time.monotonic()
        self.syncs += 1

    async def run(self) -> None:
        while True:
            await self._changed.wait()
            wait = self.last_sync + self.min_sync_period - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._changed.clear()
            if self.wanted_key != self.applied_key:
                started = time.monotonic()
                rules = self.wanted
                try:
                    await asyncio.to_thread(self.sync_now)
                except IptablesError as exc:
                    # As kube-proxy: report it and try again, never stop syncing.
                    self.on_error(str(exc).splitlines()[0])
                    self.last_sync = time.monotonic()
                    self._changed.set()
                    continue
                self.on_sync(rules, time.monotonic() - started)
            if not self._changed.is_set():
                self._idle.set()

    async def wait_synced(self) -> None:
        await self._idle.wait()


def _key(rule: ServicePortRules) -> tuple[object, ...]:
    endpoints = tuple((e.ip, e.port) for e in rule.usable())
    return (rule.port_name, rule.cluster_ip, rule.port, rule.protocol, endpoints)


def _declared(text: str) -> set[str]:
    return {line[1:].split()[0] for line in text.splitlines() if line.startswith(":")} - {
        line.split()[1] for line in text.splitlines() if line.startswith("-X ")
    }
