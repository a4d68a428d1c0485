"""host-local IPAM: each pod gets the next free address of the node's pod CIDR.

As the host-local CNI plugin hands them out: after the last address given, skipping
the network, the gateway's and the broadcast address, so a replacement pod seldom
gets the address of the pod it replaces (a stale conntrack entry cannot reach it).
"""

from __future__ import annotations

import ipaddress

from lab.naming import NODE_POD_CIDR


class HostLocal:
    def __init__(self, cidr: ipaddress.IPv4Network = NODE_POD_CIDR) -> None:
        self.cidr = cidr
        self.in_use: set[str] = set()
        self._last = 1  # the gateway's offset: the first pod gets .2

    def allocate(self) -> str:
        size = self.cidr.num_addresses
        for step in range(1, size):
            offset = (self._last + step) % size
            if offset < 2 or offset == size - 1:
                continue
            ip = str(self.cidr.network_address + offset)
            if ip not in self.in_use:
                self._last = offset
                self.in_use.add(ip)
                return ip
        raise RuntimeError(f"no free pod IP left in {self.cidr}")

    def release(self, ip: str) -> None:
        self.in_use.discard(ip)
