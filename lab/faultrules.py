"""Network faults on one pod's link, as iptables rules: pure, no root, unit-tested.

Where: the host's `filter FORWARD`, on the pod's host-side veth (`-i` for what
the pod sends, `-o` for what it receives). That is where the node forwards
the pod's traffic to and from every other pod, so one place covers both
directions, and a drop there is silent at both ends: the sender's kernel
retransmits and the connection hangs, as across a broken network (a DROP
inside the pod's own namespace would instead fail the pod's own sends at
once with EPERM). The node's own traffic with the pod (the kubelet's probes)
is not forwarded and stays untouched: the kubelet still sees the pod healthy
and keeps it in its Services, as a kubelet beside a pod cut off from the
other nodes does. The rules go first in FORWARD, before the lab's
CIP-FORWARD, so even a policy-allowed packet meets the fault.

- delay: each packet is queued (NFQUEUE) to lab/delayer.py, which releases it
  half the delay later, so a round trip (a request and its answer, a TCP
  handshake) is late by the whole delay, as `ping` across the link would
  show. Kernels without `sch_netem` (this project's CI) have NFQUEUE. The
  delayer releases a packet with NF_REPEAT and a mark bit: the packet runs
  through FORWARD again, skips the fault (the mark) and meets the lab's own
  rules (NetworkPolicies included), which a plain ACCEPT would skip.
- loss: `-m statistic --mode random --probability p -j DROP`, in each
  direction: each packet crossing the link is lost with probability p.
- partition: every packet dropped, both ways.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass

from lab.naming import CHAIN_PREFIX, host_iface

TABLE = "filter"
HOOK = "FORWARD"
# The bit the delayer sets on a packet it releases (kube-proxy uses 0x4000 and 0x8000).
FAULT_MARK = 0x100000
MARK_MATCH = ("-m", "mark", "!", "--mark", f"{FAULT_MARK:#x}/{FAULT_MARK:#x}")
QUEUE_BASE = 20_000
QUEUE_SPAN = 40_000


class FaultError(ValueError):
    pass


@dataclass(frozen=True)
class Fault:
    """What goes wrong on the link: added round-trip delay, per-packet loss, or everything lost."""

    delay_ms: float = 0.0
    loss_percent: float = 0.0
    partition: bool = False

    def __post_init__(self) -> None:
        if self.partition and (self.delay_ms or self.loss_percent):
            raise FaultError("a partition drops every packet: no delay or loss with it")
        if self.delay_ms < 0 or self.delay_ms > 60_000:
            raise FaultError(f"delay {self.delay_ms:g} ms: between 0 and 60 s")
        if not 0 <= self.loss_percent <= 100:
            raise FaultError(f"loss {self.loss_percent:g}%: between 0 and 100")
        if not (self.partition or self.delay_ms or self.loss_percent):
            raise FaultError("no fault: give a delay, a loss or a partition")

    def describe(self) -> str:
        if self.partition:
            return "partition (every packet to and from other pods dropped)"
        parts = []
        if self.delay_ms:
            parts.append(f"+{self.delay_ms:g} ms round trip")
        if self.loss_percent:
            parts.append(f"{self.loss_percent:g}% loss each way")
        return ", ".join(parts)


_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(us|ms|s)?\s*$")


def parse_delay(text: str) -> float:
    """`300ms`, `0.3s`, `300` (ms), `500us` → milliseconds, as tc netem reads a delay."""
    found = _DURATION.match(text)
    if not found:
        raise FaultError(f"delay {text!r}: a duration such as 300ms or 0.3s")
    value, unit = float(found.group(1)), found.group(2) or "ms"
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_loss(text: str) -> float:
    """`5%` or `5` → 5.0 (percent)."""
    found = re.match(r"^\s*([0-9]*\.?[0-9]+)\s*%?\s*$", text)
    if not found:
        raise FaultError(f"loss {text!r}: a percentage such as 5%")
    return float(found.group(1))


def _digest(pod: str) -> str:
    return hashlib.sha256(f"fault/{pod}".encode()).hexdigest()


def chain(pod: str) -> str:
    """The pod's fault chain: CIP- so the lab's clean-up and leftovers check find it."""
    return f"{CHAIN_PREFIX}FAULT-{_digest(pod)[:16].upper()}"


def queue_number(pod: str) -> int:
    """The NFQUEUE number of the pod's delayer, stable for the pod's name."""
    return QUEUE_BASE + int(_digest(pod)[:8], 16) % QUEUE_SPAN


Argv = tuple[str, ...]


def apply_commands(pod: str, fault: Fault) -> list[Argv]:
    """iptables arguments (after the binary) that put `fault` on the pod's link."""
    iface = host_iface(pod)
    name = chain(pod)
    rules: list[Argv] = [("-t", TABLE, "-N", name)]
    if fault.partition:
        rules.append(("-t", TABLE, "-A", name, "-j", "DROP"))
    if fault.loss_percent:
        probability = f"{fault.loss_percent / 100:.4f}"
        rules.append(
            (
                "-t", TABLE, "-A", name,
                "-m", "statistic", "--mode", "random", "--probability", probability,
                "-j", "DROP",
            )
        )  # fmt: skip
    if fault.delay_ms:
        rules.append(
            (
                "-t", TABLE, "-A", name,
                "-j", "NFQUEUE", "--queue-num", str(queue_number(pod)), "--queue-bypass",
            )
        )  # fmt: skip
    comment = ("-m", "comment", "--comment", f"clusterip-demo lab fault: {pod}")
    # Last, so no packet meets a half-built chain; -I 1: before the lab's own rules.
    for direction in ("-i", "-o"):
        rules.append(
            ("-t", TABLE, "-I", HOOK, "1", direction, iface, *MARK_MATCH, *comment, "-j", name)
        )
    return rules


def remove_commands(name: str, listed: list[str]) -> list[Argv]:
    """iptables arguments that remove fault chain `name` and the jumps to it, given
    `iptables -t filter -S`."""
    commands: list[Argv] = []
    for line in listed:
        parts = line.split()
        if len(parts) > 3 and parts[:2] == ["-A", HOOK] and parts[-2:] == ["-j", name]:
            # `-S` prints a rule as it was added: delete it by the same spec.
            commands.append(("-t", TABLE, "-D", *shlex.split(line)[1:]))
    if f"-N {name}" in listed:
        commands += [("-t", TABLE, "-F", name), ("-t", TABLE, "-X", name)]
    return commands


def delayer_argv(python: str, pod: str, fault: Fault) -> Argv:
    """The delayer's command line: half the round-trip delay per packet, each way."""
    return (
        python, "-m", "lab.delayer",
        "--queue", str(queue_number(pod)),
        "--delay-ms", f"{fault.delay_ms / 2:g}",
        "--iface", host_iface(pod),
        "--mark", str(FAULT_MARK),
    )  # fmt: skip
