"""The lab's control plane in one process: the API server's state, the controllers, kube-proxy.

This module wires the parts together and runs their loop; each part is its own unit:
- lab/apiserver.py: the objects (workloads, pods, Services, IPs, events) and kubectl's writes;
- lab/controllers/deployment.py, statefulset.py: pods for the workloads;
- lab/controllers/endpointslice.py: pods → endpoints (ready/serving/terminating);
- lab/controllers/networkpolicy.py: the NetworkPolicies as rules on the pods' links;
- lab/controllers/dns.py: the records of the cluster DNS (lab/dns.py), whose pod
  and Service the lab adds in kube-system, as every cluster has them;
- kube-proxy: the Proxier writes the rules for the ready endpoints, in
  iptables or nftables mode;
- the kubelet (lab/kubelet.py): one PodWorker per pod; the controllers reach
  it through the `PodRuntime` interface (start_pod / delete_pod), which this
  class implements.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab import dns
from lab.apiserver import ApiServer, Event, SystemObjects
from lab.checkout import AppSource
from lab.controllers import deployment, networkpolicy, statefulset
from lab.controllers.dns import DnsController
from lab.controllers.endpointslice import EndpointSliceController
from lab.envvars import service_link_env
from lab.images import ImageRuntime
from lab.iptables import Iptables, ServicePortRules
from lab.kubelet import Pod, PodWorker
from lab.manifests import Manifests, parse_documents
from lab.netpol import Policy
from lab.network import HostNetwork
from lab.proxier import Proxier, make_mode

__all__ = ["Event", "Lab", "Options"]


@dataclass
class Options:
    forward_host: str = "127.0.0.1"
    forward_port: int | None = 8080
    forward_service: str = "frontend"
    # kube-proxy's iptables-mode default.
    min_sync_period: float = 1.0
    proxy_mode: str = "iptables"  # or "nftables"
    print_events: bool = True
    seed: int | None = None
    # Enforce the manifests' NetworkPolicies, as a policy-capable CNI plugin does.
    network_policies: bool = True
    # Run the cluster DNS (kube-dns in kube-system) the pods' resolv.conf points at.
    cluster_dns: bool = True


def dns_objects(directory: Path) -> SystemObjects:
    """kube-system's kube-dns Service and Deployment, read like any manifest."""
    parsed = parse_documents(
        dns.system_documents(directory / "hosts", directory / "srv" / "srv.conf")
    )
    return SystemObjects(list(parsed.services.values()), dict(parsed.workloads))


class Lab:
    def __init__(
        self,
        manifests: Manifests,
        options: Options,
        workdir: Path,
        system: SystemObjects | None = None,
    ) -> None:
        self.options = options
        self.workdir = workdir
        dns_dir = workdir / "dns"
        if system is None and options.cluster_dns:
            system = dns_objects(dns_dir)
        self.api = ApiServer(
            manifests,
            system,
            seed=options.seed,
            network_policies=options.network_policies,
            print_events=options.print_events,
        )
        self.api.on_change = self.notify
        self.network = HostNetwork(manifests.namespace)
        # The engine that runs the project's images; None runs them from the checkout.
        self.images: ImageRuntime | None = None
        # Without an engine: where process pods run the app from (None: this checkout).
        self.app_source: AppSource | None = None
        self.ipt = Iptables()
        self.proxier = Proxier(
            make_mode(options.proxy_mode),
            options.min_sync_period,
            self._on_sync,
            lambda message: self.event("kube-proxy", "SyncFailed", message),
        )
        self.endpointslices = EndpointSliceController(self.api)
        self.dns: DnsController | None = (
            DnsController(self.api, dns_dir) if options.cluster_dns else None
        )
        self.workers: dict[str, PodWorker] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self._dirty: asyncio.Event | None = None
        self.stopping = False
        self.started_at = time.time()
        self.forward: Any = None

    # -- the API server's state, under the names the CLI and tests use ------------

    @property
    def manifests(self) -> Manifests:
        return self.api.manifests

    @property
    def namespace(self) -> str:
        return self.api.namespace

    @property
    def pods(self) -> dict[str, Pod]:
        return self.api.pods

    @property
    def cluster_ips(self) -> dict[str, str]:
        return self.api.app_cluster_ips()

    @property
    def events(self) -> deque[Event]:
        return self.api.events

    @property
    def policies(self) -> list[Policy]:
        return self.api.policies

    @property
    def endpoint_rules(self) -> list[ServicePortRules]:
        return self.endpointslices.rules

    # -- set-up ----------------------------------------------------------------

    def allocate_service_ips(self) -> None:
        self.api.allocate_service_ips()

    def setup_network(self) -> None:
        """The node, in the order that keeps it safe at every step."""
        self.allocate_service_ips()
        if self.dns is not None:
            self.dns.prepare()  # the records exist before the DNS pod reads them
        for warning in self.network.add_unreachable_routes():
            self.event("node", "Warning", warning)
        self.proxier.update(self.endpointslices.sync(), networkpolicy.compute(self.api))
        self.proxier.sync_now()  # safety chains and REJECTs, before any interface exists
        self.ipt.install_hooks(self.proxier.mode.hooks)
        self.network.create_node_iface()
        for ip in self.api.cluster_ips.values():
            self.network.add_service_ip(ip)

    # -- what the kubelet asks of us ------------------------------------------

    def notify(self) -> None:
        if self._dirty is not None:
            self._dirty.set()

    def event(self, obj: str, reason: str, message: str) -> None:
        self.api.event(obj, reason, message)

    def service_ips(self) -> dict[str, str]:
        return self.api.app_cluster_ips()

    def service_env(self) -> dict[str, str]:
        services = [
            (svc, self.api.cluster_ip(svc) or "")
            for svc in self.manifests.services.values()
            if not svc.headless
        ]
        return service_link_env(services)

    def config_maps(self) -> Mapping[str, Mapping[str, str]]:
        return self.manifests.config_maps

    def secrets(self) -> Mapping[str, Mapping[str, str]]:
        return self.manifests.secrets

    def pod_gone(self, pod: Pod) -> None:
        self.api.pods.pop(pod.name, None)
        self.workers.pop(pod.name, None)

    # -- the controllers' PodRuntime: the kubelet ---------------------------------

    def start_pod(self, pod: Pod) -> None:
        worker = PodWorker(self, pod)
        self.workers[pod.name] = worker
        task = asyncio.create_task(worker.run(), name=f"pod {pod.name}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def delete_pod(self, pod: Pod) -> None:
        worker = self.workers.get(pod.name)
        if worker is not None:
            worker.request_delete()

    def _reconcile_workloads(self) -> None:
        for key, wl in self.api.workloads.items():
            if wl.kind == "Deployment":
                deployment.reconcile(self.api, key, self)
            else:
                statefulset.reconcile(self.api, key, self)

    def _update_endpoints(self) -> None:
        rules = self.endpointslices.sync()
        if self.dns is not None:
            self.dns.sync()
        self.proxier.update(rules, networkpolicy.compute(self.api))

    def _on_sync(self, rules: Sequence[ServicePortRules], took: float) -> None:
        used = sum(len(r.usable()) for r in rules)
        self.event(
            "kube-proxy",
            "Synced",
            f"{self.proxier.mode.name}: {len(rules)} service ports, {used} endpoints"
            f" ({took * 1000:.0f} ms)",
        )

    # -- loops ---------------------------------------------------------------

    async def _reconcile_loop(self) -> None:
        assert self._dirty is not None
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                if not self.stopping:
                    self._reconcile_workloads()
                self._update_endpoints()
            except Exception as exc:  # a controller never stops for one bad pass
                self.event("controller", "Error", f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(1)
                self.notify()

    async def start(self) -> None:
        self._dirty = asyncio.Event()
        for coro, name in (
            (self._reconcile_loop(), "reconcile"),
            (self.proxier.run(), "kube-proxy"),
        ):
            task = asyncio.create_task(coro, name=name)
            self.tasks.add(task)
        self.notify()

    def all_ready(self) -> bool:
        return self.api.workloads_ready() and self.proxier.wanted_key == self.proxier.applied_key

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
        for worker in list(self.workers.values()):
            worker.request_delete(grace=grace, skip_pre_stop=True)
        finished = [w.finished.wait() for w in list(self.workers.values())]
        if finished:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*finished), grace + 20)
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def hurry(self) -> None:
        """A second Ctrl-C: SIGKILL every container now instead of waiting for grace."""
        self.stopping = True
        for worker in list(self.workers.values()):
            worker.request_delete(grace=0.0, skip_pre_stop=True)
            worker.kill_all()

    # -- kubectl's verbs (the control socket's commands) ------------------------

    def pod(self, name: str) -> Pod:
        return self.api.find_pod(name)

    def kill(self, name: str, container: str | None = None, sig: int = signal.SIGKILL) -> int:
        """Signal a container's process, as the node would (`kubectl exec … kill`)."""
        pod = self.pod(name)
        return self.workers[pod.name].kill_process(container, sig)

    def delete(self, name: str, grace: float | None = None) -> str:
        pod = self.pod(name)
        self.workers[pod.name].request_delete(grace=grace)
        return pod.name

    # -- status ----------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        endpoints = [
            {
                "service": rule.port_name.split("/")[1].split(":")[0],
                "port_name": rule.port_name,
                "cluster_ip": rule.cluster_ip,
                "port": rule.port,
                "protocol": rule.protocol,
                "endpoints": [e.__dict__ for e in rule.endpoints],
                "in_iptables": [f"{e.ip}:{e.port}" for e in rule.usable()],
            }
            for rule in self.endpoint_rules
        ]
        forward = None
        if self.forward is not None:
            forward = f"{self.forward.listen_host}:{self.forward.listen_port}"
        return {
            "pid": os.getpid(),
            "namespace": self.namespace,
            "started_at": self.started_at,
            "ready": self.all_ready(),
            "forward": forward,
            "workdir": str(self.workdir),
            "pods": [p.as_dict() for p in sorted(self.pods.values(), key=lambda p: p.name)],
            "services": self.api.services_status(),
            "endpoints": endpoints,
            "workloads": [self.api.workload_status(key) for key in self.api.workloads],
            "network_policies": sorted(p.name for p in self.policies),
            "proxy_mode": self.proxier.mode.name,
            "iptables": {
                "syncs": self.proxier.syncs,
                "synced": self.proxier.wanted_key == self.proxier.applied_key,
            },
            "events": [e.as_dict() for e in list(self.events)[-200:]],
        }
