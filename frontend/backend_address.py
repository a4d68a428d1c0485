"""Where the backend's name led, read from the connection the call used: no lookup.

The connection pool resolves `BACKEND_URL`'s host each time it opens a
connection (on Kubernetes, to the Service's ClusterIP), so the address a
connection was opened to is the name's answer as of that moment. The route
panel shows that, and when, instead of asking the resolver again on every
page view (on a cluster, two DNS queries per view for a fact already known).
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field

from frontend.backend_client import Attempt


@dataclass(frozen=True, slots=True)
class BackendAddress:
    host: str
    port: int
    # The host is an address itself: there is no name to resolve.
    literal: bool
    # The address the call's connection was opened to, without its port;
    # None when no connection opened.
    address: str | None
    # When that connection was opened, so when the name resolved to
    # `address` (seconds since the epoch); None for a literal host.
    resolved_at: float | None
    # `address` as the list runs_on() takes; a field, so that reading it
    # does not call back into this module.
    addresses: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "addresses", () if self.address is None else (self.address,))


@functools.lru_cache(maxsize=64)
def literal_address(host: str) -> str | None:
    """The address itself when `host` is an IP address, else None (a name)."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def _host_of(peer: str) -> str:
    """`10.96.0.12:8000` → `10.96.0.12`; `[::1]:8000` → `::1`."""
    return peer.rsplit(":", 1)[0].strip("[]")


def backend_address(host: str, port: int, attempt: Attempt | None) -> BackendAddress:
    literal = literal_address(host)
    peer = attempt.peer_addr if attempt is not None else None
    if literal is not None:
        return BackendAddress(host, port, True, _host_of(peer) if peer else literal, None)
    if peer is None or attempt is None:
        return BackendAddress(host, port, False, None, None)
    return BackendAddress(host, port, False, _host_of(peer), attempt.connection_opened_at)
