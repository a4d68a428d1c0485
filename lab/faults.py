"""Putting network faults on a pod's link and taking them off (the rules: lab/faultrules.py).

A fault lives in the kernel (a CIP-FAULT-<hash> chain jumped to from
FORWARD) and, for a delay, in a delayer process (lab/delayer.py); a file
under /run/cip-lab/faults/ records it so `heal` and the clean-up find both.
The lab's clean-up (`lab down`, Ctrl-C, the next `lab up`) calls
`heal_all`, which also finds chains and delayers whose file is gone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lab import faultrules
from lab.faultrules import Fault
from lab.iptables import Iptables, IptablesError, in_netns
from lab.naming import CHAIN_PREFIX, host_iface
from lab.state import STATE

FAULT_DIR = STATE / "faults"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
FAULT_CHAIN_PREFIX = f"{CHAIN_PREFIX}FAULT-"


class FaultApplyError(RuntimeError):
    pass


def _record(pod: str) -> Path:
    return FAULT_DIR / f"{pod}.json"


def active() -> list[dict[str, Any]]:
    """The faults on record: pod, interface, fault, delayer pid."""
    if not FAULT_DIR.exists():
        return []
    found = []
    for path in sorted(FAULT_DIR.glob("*.json")):
        with contextlib.suppress(OSError, ValueError):
            found.append(json.loads(path.read_text()))
    return found


def _start_delayer(pod: str, fault: Fault, netns: str | None) -> int:
    # In the pod's node's namespace: the queue its FORWARD rules send packets to is there.
    argv = (*in_netns(netns), *faultrules.delayer_argv(sys.executable, pod, fault))
    proc = subprocess.Popen(
        list(argv),
        cwd=PACKAGE_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # outlives this command, until `heal` or the lab's clean-up
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()  # "ready" once the queue is bound
    proc.stdout.close()
    if line != "ready":
        proc.kill()
        proc.wait(timeout=5)
        raise FaultApplyError(f"the delayer for {pod} did not start (queue taken?)")
    return proc.pid


def _stop(pid: int) -> None:
    """SIGTERM a delayer (it releases what it holds), SIGKILL if it lingers."""
    if not _is_delayer(pid):
        return  # gone, or the pid now belongs to someone else: never signal that
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 3
    while _is_delayer(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if _is_delayer(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")


def _is_delayer(pid: int) -> bool:
    argv = _cmdline(pid)
    # A zombie has an empty command line: it is gone for our purposes. (`ip netns exec`
    # execs the delayer itself, so a node's delayer has the same command line.)
    return len(argv) > 2 and argv[1:3] == ["-m", "lab.delayer"]


def delayer_pids() -> list[int]:
    """Every delayer process on the machine (only the lab starts them)."""
    return sorted(
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _is_delayer(int(entry.name))
    )


def apply(pod: str, fault: Fault, netns: str | None = None) -> dict[str, Any]:
    """Put `fault` on the pod's link, replacing any fault it had. `netns`: the pod's
    node's namespace, of a lab with several nodes (None: the host is the node)."""
    heal(pod)
    ipt = Iptables(netns)
    pid = None
    try:
        if fault.delay_ms:
            pid = _start_delayer(pod, fault, netns)  # bound before any packet is queued
        for args in faultrules.apply_commands(pod, fault):
            ipt.run(*args)
    except (IptablesError, FaultApplyError):
        _remove_chain(ipt, faultrules.chain(pod))
        if pid is not None:
            _stop(pid)
        raise
    record = {
        "pod": pod,
        "iface": host_iface(pod),
        "chain": faultrules.chain(pod),
        "fault": dataclasses.asdict(fault),
        "describe": fault.describe(),
        "delayer_pid": pid,
        "node_netns": netns,
        "since": time.time(),
    }
    FAULT_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    _record(pod).write_text(json.dumps(record))
    return record


def _remove_chain(ipt: Iptables, name: str) -> bool:
    listed = ipt.rules(faultrules.TABLE)
    commands = faultrules.remove_commands(name, listed)
    for args in commands:
        ipt.run(*args, check=False)
    return bool(commands)


def heal(pod: str) -> bool:
    """Take the pod's fault off. True if there was one."""
    path = _record(pod)
    record: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        record = json.loads(path.read_text())
    # The rules first: nothing is queued to a delayer that is going away.
    removed = False
    with contextlib.suppress(IptablesError):  # a node's namespace gone with its lab
        removed = _remove_chain(Iptables(record.get("node_netns")), faultrules.chain(pod))
    if record.get("delayer_pid"):
        _stop(int(record["delayer_pid"]))
    path.unlink(missing_ok=True)
    return removed or bool(record)


def heal_all() -> list[str]:
    """Every fault off, recorded or not: the clean-up's part. Returns what went."""
    removed = [f"fault on {r.get('pod')}: {r.get('describe')}" for r in active()]
    with contextlib.suppress(IptablesError):
        ipt = Iptables()
        for line in ipt.rules(faultrules.TABLE):
            if line.startswith(f"-N {FAULT_CHAIN_PREFIX}"):
                _remove_chain(ipt, line.split()[1])
    for pid in delayer_pids():
        _stop(pid)
        removed.append(f"delayer pid {pid}")
    if FAULT_DIR.exists():
        for path in FAULT_DIR.glob("*.json"):
            path.unlink(missing_ok=True)
    return removed


def fault_leftovers() -> list[str]:
    """Faults that exist now: records and delayer processes (their chains show as iptables)."""
    found = [f"fault on {r.get('pod')}: {r.get('describe')}" for r in active()]
    found += [f"delayer pid {pid}: {' '.join(_cmdline(pid)).strip()}" for pid in delayer_pids()]
    return found
