"""What kube-proxy's two modes share: the Service ports they are fed, and what a mode is.

ServicePortRules is what pkg/proxy's service and EndpointSlice caches hold
for one Service port; a ProxyMode turns the lot (a ProxyState) into the
commands of one full sync. The iptables chain names are kube-proxy's, with
CIP- in place of KUBE-.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from lab.iptables import Hook
from lab.naming import CHAIN_PREFIX, NODE_NAME


class ProxyError(RuntimeError):
    pass


@dataclass(frozen=True)
class Endpoint:
    """One EndpointSlice endpoint: a pod's address and port, its conditions, where it runs
    and the EndpointSlice controller's topology hints (the nodes and zones it is meant for)."""

    ip: str
    port: int
    pod: str
    ready: bool
    serving: bool
    terminating: bool
    node_name: str = ""
    zone: str = ""
    hints_zones: tuple[str, ...] = ()
    hints_nodes: tuple[str, ...] = ()


def _hash16(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return base64.b32encode(digest).decode()[:16]


def svc_chain(service_port_name: str, protocol: str) -> str:
    """CIP-SVC-…, as kube-proxy names KUBE-SVC-… (hash of "ns/svc:port" + protocol)."""
    return f"{CHAIN_PREFIX}SVC-{_hash16(service_port_name + protocol.lower())}"


def svl_chain(service_port_name: str, protocol: str) -> str:
    """CIP-SVL-…, the chain of a Service port's node-local endpoints (KUBE-SVL-…, same hash)."""
    return f"{CHAIN_PREFIX}SVL-{_hash16(service_port_name + protocol.lower())}"


def sep_chain(service_port_name: str, protocol: str, endpoint: str) -> str:
    """CIP-SEP-…, one per endpoint of a service port, like KUBE-SEP-…."""
    return f"{CHAIN_PREFIX}SEP-{_hash16(service_port_name + protocol.lower() + endpoint)}"


@dataclass(frozen=True)
class ServicePortRules:
    """Everything the proxier needs for one Service port."""

    port_name: str  # "ns/svc:port"
    cluster_ip: str
    port: int
    protocol: str
    endpoints: tuple[Endpoint, ...] = field(default=())
    # sessionAffinity: ClientIP's timeoutSeconds; None for no affinity.
    affinity_timeout: int | None = None
    # spec.internalTrafficPolicy: Local. trafficDistribution has no field here: kube-proxy
    # never reads it, only the hints the EndpointSlice controller writes for it.
    internal_traffic_local: bool = False

    @property
    def svc_chain(self) -> str:
        return svc_chain(self.port_name, self.protocol)

    @property
    def svl_chain(self) -> str:
        return svl_chain(self.port_name, self.protocol)

    def usable(self) -> list[Endpoint]:
        """Ready endpoints; if none, the serving ones that are terminating (as kube-proxy)."""
        ready = [e for e in self.endpoints if e.ready]
        if ready:
            return ready
        return [e for e in self.endpoints if e.serving and e.terminating]


@dataclass(frozen=True)
class NodeTopology:
    """The node a kube-proxy runs on, as it knows it: its name (--hostname-override) and its
    Node's topology.kubernetes.io/zone label ("" for none)."""

    name: str = NODE_NAME
    zone: str = ""


DEFAULT_NODE = NodeTopology()  # the one-node lab's node


@dataclass(frozen=True)
class ProxyState:
    """What the rules are made of: the Service ports and their endpoints, seen from a node."""

    ports: tuple[ServicePortRules, ...] = ()
    node: NodeTopology = DEFAULT_NODE


@dataclass(frozen=True)
class Apply:
    """One command line and the text fed to its stdin."""

    argv: tuple[str, ...]
    text: str


class ProxyMode(Protocol):
    name: str
    hooks: tuple[Hook, ...]  # rules the mode adds to the host's built-in iptables chains

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


def run_apply(apply: Apply) -> None:
    done = subprocess.run(
        list(apply.argv), input=apply.text, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise ProxyError(f"{' '.join(apply.argv)} failed: {done.stderr.strip()}\n{apply.text}")
