"""Where this frontend runs, so the route panel says what really stands between the tiers.

Under `make run` there is no Service and no ClusterIP: `BACKEND_URL` holds a
loopback address and the one backend process answers. Under compose, Docker's
embedded DNS answers `backend` with the containers' own addresses: no virtual
IP, no kernel rule choosing a pod (the very reason Kubernetes gives ClusterIPs).
In the lab and on a cluster, the name resolves to the Service's ClusterIP.

Decided from facts the process has, in this order:
1. `RUNS_ON` when it is not `auto` (a setting, for a place the facts mislead about);
2. every address the backend's name resolved to is loopback → `local`;
3. `KUBERNETES_SERVICE_HOST` (the kubelet sets it in every container), or a
   resolv.conf search path with the kubelet's `<ns>.svc.<domain>` → `kubernetes`;
4. nameserver 127.0.0.11 in resolv.conf (Docker's embedded DNS on a
   user-defined network, which compose always makes) → `compose`;
5. otherwise `unknown`: the panel then says only what it saw.
"""

from __future__ import annotations

import functools
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Place = Literal["kubernetes", "compose", "local", "unknown"]
PLACES: tuple[Place, ...] = ("kubernetes", "compose", "local", "unknown")
DOCKER_DNS = "127.0.0.11"
RESOLV_CONF = Path("/etc/resolv.conf")


@dataclass(frozen=True, slots=True)
class HostFacts:
    """What the process can see of its surroundings without asking anyone."""

    kubernetes_service_host: str | None
    nameservers: tuple[str, ...]
    search: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RunsOn:
    place: Place
    # The fact the place was decided from, in words, for the panel and the JSON.
    because: str


def parse_resolv_conf(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The nameserver and search lines of a resolv.conf (the last search line wins, as in glibc)."""
    nameservers: list[str] = []
    search: list[str] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            nameservers.append(fields[1])
        elif fields and fields[0] in ("search", "domain"):
            search = fields[1:]
    return tuple(nameservers), tuple(search)


@functools.lru_cache(maxsize=1)
def host_facts() -> HostFacts:
    """Read once: neither the environment nor resolv.conf changes under a running container."""
    try:
        text = RESOLV_CONF.read_text(errors="replace")
    except OSError:
        text = ""
    nameservers, search = parse_resolv_conf(text)
    return HostFacts(os.environ.get("KUBERNETES_SERVICE_HOST") or None, nameservers, search)


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def _kubelet_search(search: Sequence[str]) -> str | None:
    # The kubelet writes `search <ns>.svc.<domain> svc.<domain> <domain>`.
    return next((domain for domain in search if domain.startswith("svc.")), None)


def decide(override: str, addresses: Sequence[str], facts: HostFacts) -> RunsOn:
    if override != "auto":
        return RunsOn(_place(override), f"set by RUNS_ON={override}")
    if addresses and all(_loopback(a) for a in addresses):
        return RunsOn("local", f"the backend's address {addresses[0]} is loopback")
    if facts.kubernetes_service_host:
        return RunsOn("kubernetes", "KUBERNETES_SERVICE_HOST is set (the kubelet sets it)")
    domain = _kubelet_search(facts.search)
    if domain is not None:
        return RunsOn("kubernetes", f"resolv.conf searches the cluster domain {domain}")
    if DOCKER_DNS in facts.nameservers:
        return RunsOn("compose", f"resolv.conf asks Docker's embedded DNS at {DOCKER_DNS}")
    return RunsOn("unknown", "no sign of Kubernetes, compose or a loopback address")


def _place(value: str) -> Place:
    for place in PLACES:
        if value == place:
            return place
    raise ValueError(f"RUNS_ON must be auto or one of {', '.join(PLACES)}, not {value!r}")


def runs_on(override: str, addresses: Sequence[str]) -> RunsOn:
    """`decide` with this process's own facts."""
    return decide(override, addresses, host_facts())
