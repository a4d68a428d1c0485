"""kube-proxy's sync loop: endpoints into rules, at most once per min-sync period.

Like kube-proxy's BoundedFrequencyRunner: a change is applied at once if the
last sync was longer ago than `min_sync_period`, otherwise as soon as that
period is over; changes that arrive meanwhile are applied together.

A ProxyMode (lab/kubeproxy/model.py) is what differs between kube-proxy's
modes: the text a sync writes (a pure function of the wanted state and of
what the last sync left), the commands that load it, the hooks into the
host's iptables chains, and how to remove it all. `iptables` writes CIP-
chains with `iptables-restore --noflush` (lab/kubeproxy/iptables.py);
`nftables` writes the `ip cip-kube-proxy` table with one `nft -f`
transaction (lab/kubeproxy/nftables.py).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable, Sequence

from lab.iptables import IptablesError, binaries
from lab.kubeproxy.iptables import IptablesMode
from lab.kubeproxy.model import (
    DEFAULT_NODE,
    Apply,
    NodeTopology,
    ProxyError,
    ProxyMode,
    ProxyState,
    ServicePortRules,
    run_apply,
)
from lab.kubeproxy.nftables import NftablesMode
from lab.kubeproxy.topology import categorize

__all__ = ["MODES", "NodeTopology", "Proxier", "ProxyError", "make_mode"]

MODES = ("iptables", "nftables")


def make_mode(name: str) -> ProxyMode:
    """The mode with this host's binaries (the nf_tables flavour of iptables, never legacy)."""
    if name == "iptables":
        iptables_bin, restore_bin, _ = binaries()
        return IptablesMode(restore_bin, iptables_bin)
    if name == "nftables":
        nft = shutil.which("nft")
        if nft is None:
            raise ProxyError("nft is not installed (apt-get install nftables)")
        return NftablesMode(nft)
    raise ProxyError(f"proxy mode {name!r}? ({', '.join(MODES)})")


class Proxier:
    def __init__(
        self,
        mode: ProxyMode,
        min_sync_period: float,
        on_sync: Callable[[Sequence[ServicePortRules], float], None],
        on_error: Callable[[str], None] = lambda message: None,
        run: Callable[[Apply], None] = run_apply,
        clock: Callable[[], float] = time.monotonic,
        node: NodeTopology = DEFAULT_NODE,
    ) -> None:
        self.mode = mode
        # The node this kube-proxy runs on: which endpoints are local, which hints apply.
        self.node = node
        self.min_sync_period = min_sync_period
        self.on_sync = on_sync
        self.on_error = on_error
        self.run_apply = run
        self.clock = clock
        self.wanted: tuple[ServicePortRules, ...] = ()
        self.wanted_key: tuple[object, ...] = ()
        self.applied_key: tuple[object, ...] | None = None
        self.last_sync = 0.0
        self.syncs = 0
        self._changed = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def update(self, rules: Sequence[ServicePortRules]) -> None:
        self.wanted = tuple(sorted(rules, key=lambda r: (r.port_name, r.protocol)))
        # Only what the rules are made of counts: an endpoint whose conditions
        # change without changing whether it is used needs no sync.
        key = tuple(_key(r, self.node) for r in self.wanted)
        if key != self.wanted_key:
            self.wanted_key = key
            if key != self.applied_key:
                self._idle.clear()
                self._changed.set()

    def sync_now(self) -> None:
        """Write the rules for what is wanted now (blocking): used at start-up."""
        key = self.wanted_key
        state = ProxyState(self.wanted, self.node)
        now = self.clock()
        applies = self.mode.render(state, now)
        for apply in applies:
            self.run_apply(apply)
        self.mode.applied(applies, now)
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
                except (ProxyError, IptablesError) as exc:
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


def _key(rule: ServicePortRules, node: NodeTopology) -> tuple[object, ...]:
    found = categorize(rule, node)
    endpoints = tuple((e.ip, e.port) for e in found.policy(rule.internal_traffic_local))
    return (
        rule.port_name,
        rule.cluster_ip,
        rule.port,
        rule.protocol,
        rule.affinity_timeout,
        rule.internal_traffic_local,
        found.has_any,
        endpoints,
    )
