"""The CNI's rules in the kernel: written on each change, removed and listed at teardown.

Its own small loop, beside kube-proxy's and independent of its mode: when
the policies, the pods or the namespaces change, the chains of lab/cni/rules.py
are written again with one `iptables-restore --noflush` (atomic per table). A
failed write is reported and tried again, never given up.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Callable, Sequence

from lab.cni import rules
from lab.iptables import Hook, Iptables, IptablesError, declared_chains

RETRY_AFTER = 1.0


class PolicyApplier:
    hooks: tuple[Hook, ...] = rules.HOOKS

    def __init__(
        self,
        restore: Callable[[str], None],
        on_error: Callable[[str], None] = lambda message: None,
        trusted: Sequence[str] = (),
    ) -> None:
        self.restore = restore
        self.trusted = tuple(trusted)  # sources accepted before the policies (rules.render)
        self.on_error = on_error
        self.chains: set[str] = set()  # the CNI's chains in the kernel
        self.wanted: tuple[tuple[str, ...], tuple[tuple[str, ...], ...]] = ((), ())
        self.applied: tuple[tuple[str, ...], tuple[tuple[str, ...], ...]] | None = None
        self.syncs = 0
        self._changed = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def synced(self) -> bool:
        return self.wanted == self.applied

    def update(self, chains: Sequence[str], policy_rules: Sequence[Sequence[str]]) -> None:
        self.wanted = (tuple(chains), tuple(tuple(r) for r in policy_rules))
        if not self.synced:
            self._idle.clear()
            self._changed.set()

    def sync_now(self) -> None:
        """Write what is wanted now (blocking): at start-up, before any pod's interface."""
        wanted = self.wanted
        text = rules.render(wanted[0], wanted[1], stale=self.chains, trusted=self.trusted)
        self.restore(text)
        self.chains = declared_chains(text)
        self.applied = wanted
        self.syncs += 1

    async def run(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            if not self.synced:
                try:
                    await asyncio.to_thread(self.sync_now)
                except IptablesError as exc:
                    # As kube-proxy does: report it and try again, never stop syncing.
                    self.on_error(str(exc).splitlines()[0])
                    await asyncio.sleep(RETRY_AFTER)
                    self._changed.set()
                    continue
            if not self._changed.is_set() and self.synced:
                self._idle.set()

    async def wait_synced(self) -> None:
        await self._idle.wait()


def leftovers(ipt: Iptables) -> list[str]:
    """The CNI's chains, rules and hook that exist now."""
    return [f"filter: {line}" for line in ipt.rules("filter") if rules.is_cni_line(line)]


def remove(ipt: Iptables) -> list[str]:
    """Remove the CNI's hook, then its chains (those of a crashed lab too). Returns what went."""
    lines = ipt.rules("filter")
    removed: list[str] = []
    for line in lines:
        parts = line.split()
        if parts[:1] == ["-A"] and not rules.is_cni_chain(parts[1]) and rules.is_cni_line(line):
            # `-S` prints a rule as it was added: delete it by the same spec.
            ipt.run("-t", "filter", "-D", *shlex.split(line)[1:], check=False)
            removed.append(f"filter: {line}")
    chains = sorted(line.split()[1] for line in lines if line.startswith("-N "))
    chains = [c for c in chains if rules.is_cni_chain(c)]
    for chain in chains:
        ipt.run("-t", "filter", "-F", chain, check=False)
    for chain in chains:
        if ipt.run("-t", "filter", "-X", chain, check=False).returncode == 0:
            removed.append(f"filter: chain {chain}")
    return removed
