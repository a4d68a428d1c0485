"""kube-proxy: turns endpoints into rules, at most once per min-sync period, in one of two modes.

Like kube-proxy's BoundedFrequencyRunner: a change is applied at once if the
last sync was longer ago than `min_sync_period`, otherwise as soon as that
period is over; changes that arrive meanwhile are applied together.

A ProxyMode is what differs between kube-proxy's modes: the text a sync
writes (a pure function of the wanted state and of what the last sync
left), the commands that load it, the hooks into the host's iptables
chains, and how to remove it all. `iptables` writes CIP- chains with
`iptables-restore --noflush` (lab/iptables.py); `nftables` writes the
`ip cip-kube-proxy` table with one `nft -f` transaction (lab/nftables.py).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from lab import nftables
from lab.iptables import (
    CNI_HOOKS,
    HOOKS,
    IptablesError,
    ServicePortRules,
    render_cni_filter,
    render_filter,
    render_nat,
)

MODES = ("iptables", "nftables")
# kube-proxy deletes a stale chain only once it has been unreferenced this long.
STALE_CHAIN_DELAY = 1.0

Hook = tuple[str, str, tuple[str, ...]]


class ProxyError(RuntimeError):
    pass


@dataclass(frozen=True)
class ProxyState:
    """What the rules are made of: Service ports and their endpoints, NetworkPolicy chains."""

    ports: tuple[ServicePortRules, ...] = ()
    netpol_chains: tuple[str, ...] = ()
    netpol_rules: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class Apply:
    """One command line and the text fed to its stdin."""

    argv: tuple[str, ...]
    text: str


class ProxyMode(Protocol):
    name: str
    hooks: tuple[Hook, ...]  # rules the lab adds to the host's built-in iptables chains

    def render(self, state: ProxyState, now: float) -> tuple[Apply, ...]:
        """The commands of one full sync, from the state and what the last sync left."""
        ...

    def applied(self, applies: Sequence[Apply], now: float) -> None:
        """Every command of `render` succeeded: remember what the kernel holds now."""
        ...

    def cleanup_script(self) -> tuple[Apply, ...]:
        """Commands that remove what this mode owns beyond the CIP- iptables chains."""
        ...

    def rules_commands(self) -> tuple[tuple[str, ...], ...]:
        """Commands that print the rules as a reader would list them on a node."""
        ...


class IptablesMode:
    name = "iptables"
    hooks: tuple[Hook, ...] = HOOKS

    def __init__(self, restore_bin: str = "iptables-restore", iptables_bin: str = "iptables"):
        self.restore_bin = restore_bin
        self.iptables_bin = iptables_bin
        self.chains: dict[str, set[str]] = {"nat": set(), "filter": set()}

    def render(self, state: ProxyState, now: float) -> tuple[Apply, ...]:
        nat = render_nat(state.ports, self.chains["nat"])
        filt = render_filter(
            state.ports,
            self.chains["filter"],
            netpol_rules=state.netpol_rules,
            netpol_chains=state.netpol_chains,
        )
        argv = (self.restore_bin, "--noflush")
        return (Apply(argv, nat), Apply(argv, filt))

    def applied(self, applies: Sequence[Apply], now: float) -> None:
        self.chains = {"nat": _declared(applies[0].text), "filter": _declared(applies[1].text)}

    def cleanup_script(self) -> tuple[Apply, ...]:
        return ()  # the CIP- chains: Iptables.remove_lab_rules reads and removes them

    def rules_commands(self) -> tuple[tuple[str, ...], ...]:
        return ((self.iptables_bin, "-t", "nat", "-S"), (self.iptables_bin, "-t", "filter", "-S"))


class NftablesMode:
    name = "nftables"
    # Only the NetworkPolicies stay in iptables: FORWARD → CIP-FORWARD.
    hooks: tuple[Hook, ...] = CNI_HOOKS

    def __init__(
        self,
        nft_bin: str = "nft",
        restore_bin: str = "iptables-restore",
        iptables_bin: str = "iptables",
    ) -> None:
        self.nft_bin = nft_bin
        self.restore_bin = restore_bin
        self.iptables_bin = iptables_bin
        self.chains: set[str] = set()  # Service and endpoint chains in the kernel
        self.stale_since: dict[str, float] = {}
        self.sets: set[str] = set()  # affinity sets in the kernel
        self.filter_chains: set[str] = set()

    def render(self, state: ProxyState, now: float) -> tuple[Apply, ...]:
        due = [c for c, since in self.stale_since.items() if now - since >= STALE_CHAIN_DELAY]
        script = nftables.render(state.ports, delete_chains=due, existing_sets=self.sets)
        filt = render_cni_filter(self.filter_chains, state.netpol_rules, state.netpol_chains)
        return (
            Apply((self.nft_bin, "-f", "-"), script),
            Apply((self.restore_bin, "--noflush"), filt),
        )

    def applied(self, applies: Sequence[Apply], now: float) -> None:
        script = applies[0].text
        wanted = {c for c in nftables.declared_chains(script) if nftables.is_service_chain(c)}
        prefix = f"delete chain {nftables.T} "
        deleted = {line[len(prefix) :] for line in script.splitlines() if line.startswith(prefix)}
        stale = (self.chains | set(self.stale_since)) - wanted - deleted
        self.stale_since = {c: self.stale_since.get(c, now) for c in stale}
        self.chains = wanted | stale
        self.sets = set(nftables.declared_sets(script))
        self.filter_chains = _declared(applies[1].text)

    def cleanup_script(self) -> tuple[Apply, ...]:
        return (Apply((self.nft_bin, "-f", "-"), nftables.cleanup_script()),)

    def rules_commands(self) -> tuple[tuple[str, ...], ...]:
        return (
            (self.nft_bin, "list", "table", nftables.FAMILY, nftables.TABLE),
            (self.iptables_bin, "-t", "filter", "-S"),
        )


def make_mode(name: str) -> ProxyMode:
    """The mode with this host's binaries (the nf_tables flavour of iptables, never legacy)."""
    from lab.iptables import binaries

    iptables_bin, restore_bin, _ = binaries()
    if name == "iptables":
        return IptablesMode(restore_bin, iptables_bin)
    if name == "nftables":
        nft = shutil.which("nft")
        if nft is None:
            raise ProxyError("nft is not installed (apt-get install nftables)")
        return NftablesMode(nft, restore_bin, iptables_bin)
    raise ProxyError(f"proxy mode {name!r}? ({', '.join(MODES)})")


def run_apply(apply: Apply) -> None:
    done = subprocess.run(
        list(apply.argv), input=apply.text, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise ProxyError(f"{' '.join(apply.argv)} failed: {done.stderr.strip()}\n{apply.text}")


def _listed_nft_table() -> tuple[str, str] | None:
    """(nft's path, `nft list table` of the lab's table), or None: no nft, or no table."""
    nft = shutil.which("nft")
    if nft is None:
        return None
    listed = subprocess.run(
        [nft, "list", "table", nftables.FAMILY, nftables.TABLE],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return (nft, listed.stdout) if listed.returncode == 0 else None


def remove_nft_table() -> list[str]:
    """Delete the lab's nft table if there is one (whatever mode the last lab ran)."""
    found = _listed_nft_table()
    if found is None:
        return []
    run_apply(NftablesMode(found[0]).cleanup_script()[0])
    return [f"nft table {nftables.T}"]


def nft_leftovers() -> list[str]:
    """The lab's nft table, if it exists: one line per chain, set and map."""
    found = _listed_nft_table()
    if found is None:
        return []
    return [
        f"{nftables.T}: {line.strip().rstrip('{').strip()}"
        for line in found[1].splitlines()
        if line.strip().startswith(("table ", "chain ", "set ", "map "))
    ] or [f"table {nftables.T}"]


class Proxier:
    def __init__(
        self,
        mode: ProxyMode,
        min_sync_period: float,
        on_sync: Callable[[Sequence[ServicePortRules], float], None],
        on_error: Callable[[str], None] = lambda message: None,
        run: Callable[[Apply], None] = run_apply,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.mode = mode
        self.min_sync_period = min_sync_period
        self.on_sync = on_sync
        self.on_error = on_error
        self.run_apply = run
        self.clock = clock
        self.wanted: tuple[ServicePortRules, ...] = ()
        # NetworkPolicy enforcement: CIP-NP-* chains and the rules of them and CIP-NETPOL.
        self.netpol: tuple[tuple[str, ...], tuple[tuple[str, ...], ...]] = ((), ())
        self.wanted_key: tuple[object, ...] = ()
        self.applied_key: tuple[object, ...] | None = None
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
        key = self.wanted_key
        state = ProxyState(self.wanted, *self.netpol)
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


def _key(rule: ServicePortRules) -> tuple[object, ...]:
    endpoints = tuple((e.ip, e.port) for e in rule.usable())
    return (
        rule.port_name,
        rule.cluster_ip,
        rule.port,
        rule.protocol,
        rule.affinity_timeout,
        endpoints,
    )


def _declared(text: str) -> set[str]:
    return {line[1:].split()[0] for line in text.splitlines() if line.startswith(":")} - {
        line.split()[1] for line in text.splitlines() if line.startswith("-X ")
    }
