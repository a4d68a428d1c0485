"""Running iptables on the node: the nf_tables binaries, `iptables-restore` text, hooks, cleanup.

Shared by whoever writes iptables rules on the node: kube-proxy in iptables
mode (lab/kubeproxy/iptables.py), the CNI's NetworkPolicy rules (lab/cni/),
the network faults (lab/faults.py) and the lab's cleanup (lab/network.py).
Every chain the lab creates is named CIP-…; a rule it adds to a built-in
chain (a hook) carries COMMENT and jumps into one of them.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Iterable, Sequence

from lab.naming import CHAIN_PREFIX

COMMENT = "clusterip-demo lab"

# (table, built-in chain, rule spec after `-A CHAIN`): a rule the lab adds
# outside its own chains, narrowed to lab traffic where it can be.
Hook = tuple[str, str, tuple[str, ...]]


class IptablesError(RuntimeError):
    pass


def restore_text(
    table: str, chains: Sequence[str], rules: Sequence[Sequence[str]], stale: Iterable[str] = ()
) -> str:
    """`iptables-restore --noflush` input that replaces the declared chains atomically."""
    lines = [f"*{table}"]
    current = list(dict.fromkeys(chains))
    gone = sorted(set(stale) - set(current))
    # Declaring a chain with --noflush empties it; a stale chain is declared
    # (so it is empty) and then deleted, after nothing jumps to it any more.
    lines += [f":{chain} - [0:0]" for chain in current + gone]
    lines += [" ".join(rule) for rule in rules]
    lines += [f"-X {chain}" for chain in gone]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def declared_chains(text: str) -> set[str]:
    """The chains that `iptables-restore` input leaves in the kernel."""
    return {line[1:].split()[0] for line in text.splitlines() if line.startswith(":")} - {
        line.split()[1] for line in text.splitlines() if line.startswith("-X ")
    }


def binaries() -> tuple[str, str, str]:
    """iptables, iptables-restore and iptables-save of the nf_tables flavour, never legacy.

    Reading tables with iptables-legacy creates empty legacy tables and a
    warning on every later call, so the legacy tools are refused outright.
    """
    names = ("iptables-nft", "iptables-nft-restore", "iptables-nft-save")
    found = [shutil.which(n) for n in names]
    if all(found):
        return found[0], found[1], found[2]  # type: ignore[return-value]
    plain = [shutil.which(n) for n in ("iptables", "iptables-restore", "iptables-save")]
    if not all(plain):
        raise IptablesError("iptables is not installed (apt-get install iptables)")
    version = subprocess.run([plain[0], "--version"], capture_output=True, text=True, check=False)  # type: ignore[list-item]
    if "nf_tables" not in version.stdout:
        raise IptablesError(f"{plain[0]} is not the nf_tables variant: {version.stdout.strip()}")
    return plain[0], plain[1], plain[2]  # type: ignore[return-value]


def in_netns(netns: str | None) -> tuple[str, ...]:
    """The prefix that runs a command in a node's namespace (none: the host's)."""
    if netns is None:
        return ()
    ip = shutil.which("ip")
    if ip is None:
        raise IptablesError("`ip` is not installed (apt-get install iproute2)")
    return (ip, "netns", "exec", netns)


class Iptables:
    def __init__(self, netns: str | None = None) -> None:
        self.iptables, self.restore_bin, self.save_bin = binaries()
        self.prefix = in_netns(netns)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*self.prefix, self.iptables, *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if check and done.returncode != 0:
            raise IptablesError(f"iptables {' '.join(args)}: {done.stderr.strip()}")
        return done

    def restore(self, text: str) -> None:
        done = subprocess.run(
            [*self.prefix, self.restore_bin, "--noflush"],
            input=text,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            raise IptablesError(f"iptables-restore failed: {done.stderr.strip()}\n{text}")

    def rules(self, table: str) -> list[str]:
        return self.run("-t", table, "-S").stdout.splitlines()

    def lab_chains(self, table: str) -> set[str]:
        return {
            line.split()[1] for line in self.rules(table) if line.startswith(f"-N {CHAIN_PREFIX}")
        }

    def install_hooks(self, hooks: Sequence[Hook]) -> None:
        """Jump from the built-in chains into the lab's, first in line, once."""
        for table, chain, spec in hooks:
            full = (*spec[:-2], "-m", "comment", "--comment", COMMENT, *spec[-2:])
            if self.run("-t", table, "-C", chain, *full, check=False).returncode != 0:
                self.run("-t", table, "-I", chain, "1", *full)

    def remove_lab_rules(self) -> list[str]:
        """Delete every jump into a CIP chain, then every CIP chain. Returns what went."""
        removed: list[str] = []
        for table in ("nat", "filter", "mangle", "raw"):
            try:
                lines = self.rules(table)
            except IptablesError:
                continue
            for line in lines:
                parts = line.split()
                if len(parts) < 3 or parts[0] != "-A" or parts[1].startswith(CHAIN_PREFIX):
                    continue
                if f"-j {CHAIN_PREFIX}" in line or f"-g {CHAIN_PREFIX}" in line:
                    # `-S` prints a rule as it was added: delete it by the same spec.
                    self.run("-t", table, "-D", *shlex.split(line)[1:], check=False)
                    removed.append(f"{table}: {line}")
            chains = sorted(
                line.split()[1] for line in lines if line.startswith(f"-N {CHAIN_PREFIX}")
            )
            for chain in chains:
                self.run("-t", table, "-F", chain, check=False)
            for chain in chains:
                self.run("-t", table, "-X", chain, check=False)
                removed.append(f"{table}: chain {chain}")
        return removed
