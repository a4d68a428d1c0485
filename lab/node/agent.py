"""One node's components: its kubelet, its kube-proxy, its CNI, its network.

Every node of the lab has its own, acting where the node is (lab/node/place.py): the
host for the one-node lab, the node's namespace for a lab with several. What the
nodes share (the informers' objects, the lab's events, the engine, the DNS files)
comes from the Lab (lab/cluster.py) through `shared`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from lab.checkout import AppSource
from lab.cni.applier import PolicyApplier
from lab.images import ImageRuntime
from lab.iptables import Iptables, in_netns
from lab.kubelet import LabServices, Pod
from lab.kubeproxy.model import Apply, NodeTopology, run_apply
from lab.kubeproxy.proxier import Proxier, make_mode
from lab.kubeproxy.topology import picked
from lab.naming import HOST_ON_NODE_NETWORK
from lab.network import HostNetwork
from lab.node.client import Client
from lab.node.heartbeat import Heartbeat
from lab.node.place import NodePlace
from lab.node.pods import PodManager


class Shared(LabServices, Protocol):
    """What the nodes share: the Lab (lab/cluster.py)."""

    namespace: str

    def spawn(self, coro: Any, name: str) -> None: ...


def runner(netns: str | None) -> Callable[[Apply], None]:
    """kube-proxy's commands, run in the node's namespace."""
    prefix = in_netns(netns)
    if not prefix:
        return run_apply
    return lambda apply: run_apply(Apply((*prefix, *apply.argv), apply.text))


class NodeAgent:
    def __init__(
        self,
        shared: Shared,
        place: NodePlace,
        client: Client,
        proxy_mode: str,
        min_sync_period: float,
        several: bool,
    ) -> None:
        self.shared = shared
        self.node = place
        self.several = several
        self.network = HostNetwork(shared.namespace, place.gateway, place.netns)
        # What this node's kube-proxy knows of where it is: internalTrafficPolicy Local and
        # the EndpointSlices' hints pick endpoints by it (lab/kubeproxy/topology.py).
        self.topology = NodeTopology(place.name, place.zone)
        self.ipt = Iptables(place.netns)
        self.proxier = Proxier(
            make_mode(proxy_mode),
            min_sync_period,
            self._on_sync,
            lambda message: self.event(self.component("kube-proxy"), "SyncFailed", message),
            run=runner(place.netns),
            node=self.topology,
        )
        self.cni = PolicyApplier(
            self.ipt.restore,
            lambda message: self.event(self.component("cni"), "SyncFailed", message),
            trusted=[str(HOST_ON_NODE_NETWORK)] if several else [],
        )
        self.kubelet = PodManager(self, client, shared.spawn)
        # Of several nodes, each kubelet renews its node's Lease: a silent one is marked
        # NotReady by the node-lifecycle controller. The one node has none (left alone).
        self.heartbeat = (
            Heartbeat(
                client,
                place.name,
                on_error=lambda message: self.event(self.component("kubelet"), "Lease", message),
                on_back=self._back,
            )
            if several
            else None
        )
        # `lab node stop`: the node's cable is out and its kubelet and kube-proxy silent
        # (they cannot reach the API server); its pods keep running, as on a cut-off node.
        self.stopped = False

    def component(self, name: str) -> str:
        """A component's name in the lab's events: which node's, when there are several."""
        return f"{name}/{self.node.name}" if self.several else name

    # -- the node's start: safety rules first, then the hooks into them ------------

    def install_rules(self) -> None:
        self.proxier.sync_now()
        self.cni.sync_now()
        # Each hook goes first in its built-in chain: the CNI's first, so that kube-proxy's
        # fences come before the CNI's ACCEPT in FORWARD.
        self.ipt.install_hooks(self.cni.hooks)
        self.ipt.install_hooks(self.proxier.mode.hooks)

    def _back(self) -> None:
        """Renewing again after a silence: write every pod's status again, since the
        node-lifecycle controller marked them not ready meanwhile."""
        self.kubelet.resync()
        self.notify()

    def stop(self) -> None:
        self.stopped = True
        if self.heartbeat is not None:
            self.heartbeat.pause()

    def start(self) -> None:
        self.stopped = False
        if self.heartbeat is not None:
            self.heartbeat.resume()
        self.notify()

    def synced(self) -> bool:
        return self.proxier.wanted_key == self.proxier.applied_key and self.cni.synced

    def _on_sync(self, rules: Any, took: float) -> None:
        used = sum(len(picked(r, self.topology)) for r in rules)
        self.event(
            self.component("kube-proxy"),
            "Synced",
            f"{self.proxier.mode.name}: {len(rules)} service ports, {used} endpoints"
            f" ({took * 1000:.0f} ms)",
        )

    # -- what a pod worker asks of its node (lab/kubelet.py's Cluster) -------------

    @property
    def workdir(self) -> Path:
        return self.shared.workdir

    @property
    def images(self) -> ImageRuntime | None:
        return self.shared.images

    @property
    def app_source(self) -> AppSource | None:
        return self.shared.app_source

    def notify(self) -> None:
        self.shared.notify()

    def event(self, obj: str, reason: str, message: str) -> None:
        self.shared.event(obj, reason, message)

    def pod_event(self, pod: Pod, reason: str, message: str) -> None:
        self.shared.pod_event(pod, reason, message)

    def service_ips(self) -> dict[str, str]:
        return self.shared.service_ips()

    def service_env(self, namespace: str) -> dict[str, str]:
        return self.shared.service_env(namespace)

    def config_maps(self, namespace: str) -> Mapping[str, Mapping[str, str]]:
        return self.shared.config_maps(namespace)

    def secrets(self, namespace: str) -> Mapping[str, Mapping[str, str]]:
        return self.shared.secrets(namespace)

    def pod_gone(self, pod: Pod) -> None:
        self.kubelet.gone(pod)
