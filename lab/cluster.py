"""The lab's node beside its API server: the composition root, and nothing else.

The API server (lab/api/, started by lab/controlplane.py) holds every object and runs
the controllers (Deployment → ReplicaSet → Pod, StatefulSet, EndpointSlice, the
scheduler). This node reads it over HTTPS through informers (lab/node/informer.py),
as a node's components do, and each component acts on what it reads:
- the kubelet (lab/node/pods.py, lab/kubelet.py) runs the pods bound to this node and
  writes their status back;
- kube-proxy (lab/kubeproxy/) writes the rules for the Services' ClusterIPs and the
  EndpointSlices' ready endpoints (lab/sources/kubeproxy.py), in iptables or nftables mode;
- the CNI's policy half (lab/cni/) enforces the NetworkPolicies of the policies, pods and
  namespaces (lab/sources/cni.py), whichever mode kube-proxy runs in;
- the cluster DNS: its records (lab/sources/dns.py) are written where the kube-dns
  pod's dnsmasq reads them; its Deployment is created in kube-system as an add-on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import deque
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab import dns
from lab.checkout import AppSource
from lab.cni.applier import PolicyApplier
from lab.cni.policy import compile_policies
from lab.images import ImageRuntime
from lab.kubelet import Pod, PodWorker
from lab.kubeproxy.model import ServicePortRules
from lab.kubeproxy.proxier import Proxier
from lab.network import HostNetwork, add_unreachable_routes, ensure_etc_netns
from lab.node import status as node_status
from lab.node.agent import NodeAgent
from lab.node.client import ApiError, ApiUnavailable, Client
from lab.node.dnsfiles import DnsFiles
from lab.node.events import QUIET, kubelet_event
from lab.node.informer import Informer
from lab.node.place import find_place, places
from lab.node.pods import PodManager
from lab.nodenet import NodeNetwork
from lab.sources import cni, configdata, envvars, kubeproxy
from lab.sources import dns as dns_source

__all__ = ["Event", "Lab", "Options"]

WATCHED = {
    "pods": "/api/v1/pods",
    "services": "/api/v1/services",
    "slices": "/apis/discovery.k8s.io/v1/endpointslices",
    "policies": "/apis/networking.k8s.io/v1/networkpolicies",
    "namespaces": "/api/v1/namespaces",
    "configmaps": "/api/v1/configmaps",
    "secrets": "/api/v1/secrets",
    "deployments": "/apis/apps/v1/deployments",
    "replicasets": "/apis/apps/v1/replicasets",
    "statefulsets": "/apis/apps/v1/statefulsets",
}


@dataclass
class Options:
    forward_host: str = "127.0.0.1"
    forward_port: int | None = 8080
    forward_service: str = "frontend"
    # kube-proxy's iptables-mode default.
    min_sync_period: float = 1.0
    proxy_mode: str = "iptables"  # or "nftables"
    print_events: bool = True
    # 1: the host is the node. More: each node a network namespace (lab/nodenet.py).
    nodes: int = 1
    # Enforce the manifests' NetworkPolicies, as a policy-capable CNI plugin does.
    network_policies: bool = True


@dataclass
class Event:
    at: float
    obj: str
    reason: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at, "obj": self.obj, "reason": self.reason, "message": self.message}


class Lab:
    def __init__(self, options: Options, workdir: Path, namespace: str, client: Client) -> None:
        self.options = options
        self.workdir = workdir
        self.namespace = namespace  # the app's, for the port-forward and the CLI's messages
        self.client = client
        # The engine that runs the project's images; None runs them from the checkout.
        self.images: ImageRuntime | None = None
        # Without an engine: where process pods run the app from (None: this checkout).
        self.app_source: AppSource | None = None
        self.places = places(options.nodes)
        several = len(self.places) > 1
        self.agents = [
            NodeAgent(self, place, client, options.proxy_mode, options.min_sync_period, several)
            for place in self.places
        ]
        # Several nodes: each a namespace on a switch; one: the host is the node.
        self.nodenet = NodeNetwork(self.places) if several else None
        self.etc_netns_created = False
        self.dns = DnsFiles(workdir / "dns")
        self.informers = {
            name: Informer(client, path, self.notify) for name, path in WATCHED.items()
        }
        self.events: deque[Event] = deque(maxlen=500)
        self.rules: list[ServicePortRules] = []
        self.routed: set[str] = set()  # ClusterIPs the host has a route for
        self.tasks: set[asyncio.Task[Any]] = set()
        self._dirty: asyncio.Event | None = None
        self.deployed = False
        self.stopping = False
        self.started_at = time.time()
        self.forward: Any = None

    # Node 1's components: the one node's, as the lab's status and instructions show them.
    @property
    def network(self) -> HostNetwork:
        return self.agents[0].network

    @property
    def proxier(self) -> Proxier:
        return self.agents[0].proxier

    @property
    def cni(self) -> PolicyApplier:
        return self.agents[0].cni

    @property
    def kubelet(self) -> PodManager:
        return self.agents[0].kubelet

    def agent(self, node: str) -> NodeAgent:
        return self.agents[find_place(self.places, node).index - 1]

    def items(self, name: str) -> list[dict[str, Any]]:
        return self.informers[name].items()

    # -- set-up ----------------------------------------------------------------

    def setup_network(self) -> None:
        """The node, in the order that keeps it safe at every step."""
        self.dns.prepare()  # the records exist before the DNS pod reads them
        for warning in add_unreachable_routes():
            self.event("node", "Warning", warning)
        self.etc_netns_created = ensure_etc_netns()
        if self.nodenet is not None:
            self.nodenet.create()
        # Safety chains and REJECTs, and the policy chains, before any pod's interface.
        for agent in self.agents:
            agent.install_rules()
        if self.nodenet is None:
            self.network.create_node_iface()

    # -- what the kubelet asks of us ------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def notify(self) -> None:
        if self._dirty is not None:
            self._dirty.set()

    def event(self, obj: str, reason: str, message: str) -> None:
        event = Event(time.time(), obj, reason, message)
        self.events.append(event)
        if self.options.print_events:
            stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
            print(f"{stamp}  {obj:<34} {reason:<10} {message}", flush=True)

    def pod_event(self, pod: Pod, reason: str, message: str) -> None:
        """A pod worker's event: in the lab's output, and on the API server as a kubelet's."""
        if reason not in QUIET:
            self.event(f"pod/{pod.name}", reason, message)
        posted = kubelet_event(pod.namespace, pod.name, pod.uid, reason, message, pod.node_name)
        if posted is not None and not self.stopping:
            self.spawn(self._post_event(posted), f"event {pod.name}")

    async def _post_event(self, event: dict[str, Any]) -> None:
        # Best effort, as the kubelet's recorder: an event lost never holds a pod up.
        # (A RuntimeError: the client closed while the lab stops.)
        with contextlib.suppress(ApiUnavailable, ApiError, RuntimeError):
            namespace = event["metadata"]["namespace"]
            await self.client.create(f"/api/v1/namespaces/{namespace}/events", event)

    def service_ips(self) -> dict[str, str]:
        return {
            s["metadata"]["name"]: s["spec"]["clusterIP"]
            for s in self.items("services")
            if s["metadata"]["namespace"] == self.namespace
            and s["spec"].get("clusterIP") not in (None, "", "None")
        }

    def service_env(self, namespace: str) -> dict[str, str]:
        return envvars.service_env(self.items("services"), namespace)

    def config_maps(self, namespace: str) -> Mapping[str, Mapping[str, str]]:
        return configdata.config_maps(self.items("configmaps")).get(namespace, {})

    def secrets(self, namespace: str) -> Mapping[str, Mapping[str, str]]:
        return configdata.secrets(self.items("secrets")).get(namespace, {})

    def _all_workers(self) -> list[PodWorker]:
        return [w for agent in self.agents for w in agent.kubelet.workers.values()]

    @property
    def workers(self) -> dict[str, PodWorker]:
        return {w.pod.name: w for w in self._all_workers()}

    @property
    def pods(self) -> dict[str, Pod]:
        return {w.pod.name: w.pod for w in self._all_workers()}

    # -- the node's components, on each change --------------------------------

    def _sync_components(self) -> None:
        services, slices = self.items("services"), self.items("slices")
        pods = self.items("pods")
        live = [agent for agent in self.agents if not agent.stopped]
        for agent in live:
            agent.kubelet.stopping = self.stopping
            agent.kubelet.sync(pods)
        self.rules = kubeproxy.service_port_rules(services, slices)
        for ip in sorted({r.cluster_ip for r in self.rules} - self.routed):
            if self.nodenet is not None:
                self.nodenet.add_service_ip(ip)
            else:
                self.network.add_service_ip(ip)
            self.routed.add(ip)
        if self.dns.sync(dns_source.dns_services(services, slices)):
            self.event(f"deployment/{dns.DNS_SERVICE}", "Records", "SRV changed: dnsmasq restarts")
        netpol: tuple[list[str], list[list[str]]] = ([], [])
        if self.options.network_policies:
            policies, refs, labels = cni.policy_inputs(
                self.items("policies"), self._pods_with_addresses(), self.items("namespaces")
            )
            netpol = compile_policies(policies, refs, labels)
        for agent in live:
            agent.proxier.update(self.rules)
            agent.cni.update(*netpol)

    def _pods_with_addresses(self) -> list[dict[str, Any]]:
        """The Pods, each of this node's with the address its CNI gave it: the policy for a
        pod is in place before its containers start, not once its status is written."""
        local = {w.pod.uid: w.pod.ip for w in self._all_workers() if w.pod.net}
        pods = []
        for obj in self.items("pods"):
            ip = local.get(obj["metadata"]["uid"])
            if ip and not (obj.get("status") or {}).get("podIP"):
                obj = {**obj, "status": {**(obj.get("status") or {}), "podIP": ip}}
            pods.append(obj)
        return pods

    # -- loops ---------------------------------------------------------------

    async def _reconcile_loop(self) -> None:
        assert self._dirty is not None
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                self._sync_components()
                for agent in self.agents:
                    if not agent.stopped:
                        await agent.kubelet.write_statuses()
            except Exception as exc:  # a component never stops for one bad pass
                self.event("node", "Error", f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(1)
                self.notify()

    async def start(self) -> None:
        self._dirty = asyncio.Event()
        self.spawn(self._reconcile_loop(), "node")
        for agent in self.agents:
            if agent.heartbeat is not None:
                self.spawn(agent.heartbeat.run(), agent.component("kubelet"))
            self.spawn(agent.proxier.run(), agent.component("kube-proxy"))
            self.spawn(agent.cni.run(), agent.component("cni"))
        for name, informer in self.informers.items():
            self.spawn(informer.run(), f"informer {name}")
        await asyncio.gather(*(i.synced.wait() for i in self.informers.values()))
        self.notify()

    def all_ready(self) -> bool:
        synced = all(agent.synced() for agent in self.agents)
        return self.deployed and synced and node_status.workloads_ready(self)

    async def wait_ready(self, within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.all_ready():
                return True
            await asyncio.sleep(0.1)
        return False

    async def stop(self, grace: float = 3.0) -> None:
        """Delete every pod quickly (no preStop, short grace) and stop the loops."""
        self.stopping = True
        for agent in self.agents:
            agent.kubelet.stopping = True
        workers = self._all_workers()
        for worker in workers:
            worker.request_delete(grace=grace, skip_pre_stop=True)
        finished = [w.finished.wait() for w in workers]
        if finished:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*finished), grace + 20)
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.client.close()

    def hurry(self) -> None:
        """A second Ctrl-C: SIGKILL every container now instead of waiting for grace."""
        self.stopping = True
        for agent in self.agents:
            agent.kubelet.stopping = True
        for worker in self._all_workers():
            worker.request_delete(grace=0.0, skip_pre_stop=True)
            worker.kill_all()

    # -- a node's cable: `lab node stop|start` ---------------------------------------

    def node_action(self, action: str, node: str) -> str:
        if self.nodenet is None:
            raise ValueError("the one-node lab's node is the host: start a lab with NODES=3")
        agent = self.agent(node)
        name = agent.node.name
        if action == "stop":
            self.nodenet.set_link(agent.node, up=False)
            agent.stop()
            self.event(f"node/{name}", "Stopped", "its link is down; its kubelet is silent")
            return f"{name} stopped: its link is down, its kubelet silent"
        if action == "start":
            self.nodenet.set_link(agent.node, up=True)
            agent.start()
            self.event(f"node/{name}", "Started", "its link is up; its kubelet reports again")
            return f"{name} started: its link is up, its kubelet reports again"
        raise ValueError(f"node {action!r}? (stop, start)")

    # -- the node's own verbs: what `kill -9 <pid>` on the node does -------------

    def pod(self, name: str) -> Pod:
        pods = self.pods
        if name in pods:
            return pods[name]
        matches = [p for p in pods.values() if p.name.startswith(name)]
        if len(matches) != 1:
            raise KeyError(f"no pod {name!r} on this node")
        return matches[0]

    def kill(self, name: str, container: str | None = None, sig: int = signal.SIGKILL) -> int:
        """Signal a container's process, as the node would (`kubectl exec … kill`)."""
        pod = self.pod(name)
        return self.workers[pod.name].kill_process(container, sig)

    def status(self) -> dict[str, Any]:
        return {
            **node_status.status(self),
            "pid": os.getpid(),
            "started_at": self.started_at,
            "ready": self.all_ready(),
        }
