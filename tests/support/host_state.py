"""What a test that runs a container engine must leave as it found it.

Firewall rules (without packet counters), `net.ipv4.ip_forward`, links, routes,
network namespaces and mounts. Compared as sets so that order does not matter;
a difference names what appeared and what vanished.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path


def _lines(*argv: str) -> set[str]:
    if shutil.which(argv[0]) is None:
        return set()
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    return {line for line in done.stdout.splitlines() if line.strip()}


def _firewall() -> set[str]:
    # Packet counters change on their own, and the "# Generated" lines carry a time.
    return {
        re.sub(r"\[\d+:\d+\]", "", line)
        for line in _lines("iptables-save")
        if not line.startswith("#")
    }


def _mounts() -> set[str]:
    # Mount points only: options change as containers come and go on shared mounts.
    return {line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()}


def snapshot() -> dict[str, set[str]]:
    return {
        "iptables": _firewall(),
        "ip_forward": {Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()},
        "links": {line.split()[0] for line in _lines("ip", "-br", "link")},
        "routes": _lines("ip", "route", "show", "table", "all"),
        "netns": _lines("ip", "netns", "list"),
        "mounts": _mounts(),
    }


def differences(before: dict[str, set[str]], after: dict[str, set[str]]) -> list[str]:
    found = []
    for key in before:
        added, removed = after[key] - before[key], before[key] - after[key]
        if added or removed:
            found.append(f"{key}: added {sorted(added)}, removed {sorted(removed)}")
    return found
