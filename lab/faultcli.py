"""`python -m lab netem|partition|heal|faults`: network faults on one pod's link.

    python -m lab netem redis --delay 300ms [--loss 5%]   # a slow, lossy link
    python -m lab partition mysql-0                       # packets dropped: connections hang
    python -m lab heal redis                              # the link as it was (--all: every pod)
    python -m lab faults                                  # what is on now

A pod is named in full or by a unique prefix (`redis`, `backend-6f9`). The
fault stays on the pod's link (a container restart keeps it); a pod that is
replaced comes back on a new link without it, and `lab down` removes them all.
"""

from __future__ import annotations

import argparse
from typing import Any

from lab import faults
from lab.control import ControlError, request
from lab.faultrules import Fault, FaultError, parse_delay, parse_loss
from lab.iptables import IptablesError


def _pod_name(given: str, names: list[str]) -> str:
    """The one name equal to `given`, or the one starting with it."""
    if given in names:
        return given
    matches = [name for name in names if name.startswith(given)]
    if len(matches) != 1:
        found = ", ".join(matches) if matches else "none"
        raise SystemExit(f"lab: no single pod matches {given!r} (matches: {found})")
    return matches[0]


def _running_pods() -> dict[str, str | None]:
    """The running pods, each with its node's namespace (None: the host is the node)."""
    try:
        status = request("status")
    except ControlError as exc:
        raise SystemExit(f"lab: {exc}") from None
    netns = {node["name"]: node.get("netns") for node in status.get("nodes") or []}
    return {
        p["name"]: netns.get(p.get("node", "")) for p in status["pods"] if not p.get("deleting")
    }


def _apply(pod: str, fault: Fault) -> int:
    pods = _running_pods()
    name = _pod_name(pod, list(pods))
    try:
        record = faults.apply(name, fault, pods[name])
    except (IptablesError, faults.FaultApplyError) as exc:
        raise SystemExit(f"lab: {exc}") from None
    print(f"pod/{name}: {record['describe']} (on {record['iface']}, chain {record['chain']})")
    return 0


def cmd_netem(args: argparse.Namespace) -> int:
    try:
        fault = Fault(
            delay_ms=parse_delay(args.delay) if args.delay else 0.0,
            loss_percent=parse_loss(args.loss) if args.loss else 0.0,
        )
    except FaultError as exc:
        raise SystemExit(f"lab: {exc}") from None
    return _apply(args.pod, fault)


def cmd_partition(args: argparse.Namespace) -> int:
    return _apply(args.pod, Fault(partition=True))


def cmd_heal(args: argparse.Namespace) -> int:
    if args.all:
        for item in faults.heal_all() or ["(no fault)"]:
            print(item)
        return 0
    if not args.pod:
        raise SystemExit("lab: heal POD, or heal --all")
    # The faulted pods first: a pod being deleted can still be healed.
    on_record = [r["pod"] for r in faults.active()]
    name = _pod_name(args.pod, on_record) if on_record else args.pod
    print(f"pod/{name}: {'healed' if faults.heal(name) else 'had no fault'}")
    return 0


def cmd_faults(args: argparse.Namespace) -> int:
    records: list[dict[str, Any]] = faults.active()
    for record in records:
        print(f"{record['pod']}\t{record['describe']}\t{record['iface']}\t{record['chain']}")
    if not records:
        print("no network fault")
    return 0


def add_parsers(sub: Any) -> None:
    """The fault verbs, on `python -m lab`'s subcommand parser."""
    netem = sub.add_parser(
        "netem", help="add round-trip delay and/or loss to a pod's link (tc netem's words)"
    )
    netem.add_argument("pod")
    netem.add_argument("--delay", help="added to each round trip, e.g. 300ms")
    netem.add_argument("--loss", help="of the packets each way, e.g. 5%%")
    netem.set_defaults(func=cmd_netem)

    partition = sub.add_parser(
        "partition", help="drop every packet between a pod and the other pods (they hang)"
    )
    partition.add_argument("pod")
    partition.set_defaults(func=cmd_partition)

    heal = sub.add_parser("heal", help="remove a pod's network fault (--all: every pod's)")
    heal.add_argument("pod", nargs="?")
    heal.add_argument("--all", action="store_true")
    heal.set_defaults(func=cmd_heal)

    listing = sub.add_parser("faults", help="the network faults now on")
    listing.set_defaults(func=cmd_faults)
