"""The lab's control plane: controllers, EndpointSlices, kube-proxy, all in one process.

- Deployment controller: keeps `replicas` pods of the current template
  (pods named <deployment>-<pod-template-hash>-<suffix>); a pod that is
  deleted is replaced at once, while it is still terminating. Rolling updates
  follow maxSurge/maxUnavailable; Recreate stops the old pods first.
- StatefulSet controller: pods <name>-0, -1, … created in order, each once
  the one before is Ready; a pod's replacement keeps its name and its claim,
  and waits until the old pod is fully gone.
- EndpointSlice controller: for each Service, the pods its selector matches,
  with targetPort resolved per pod and the ready/serving/terminating
  conditions from the kubelet.
- kube-proxy: the Proxier writes the rules for the ready endpoints, in
  iptables or nftables mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import os
import random
import signal
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lab.envvars import service_link_env
from lab.images import ImageRuntime
from lab.iptables import Endpoint, Iptables, ServicePortRules
from lab.kubelet import Pod, PodWorker
from lab.manifests import (
    ManifestError,
    Manifests,
    PodTemplate,
    Selector,
    template_fingerprint,
)
from lab.naming import (
    NODE_GATEWAY,
    NODE_POD_CIDR,
    SERVICE_CIDR,
    host_iface,
    random_suffix,
    service_ip,
    template_hash,
)
from lab.netpol import PodRef, Policy, compile_policies, parse_policy
from lab.network import HostNetwork
from lab.proxier import Proxier, make_mode


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


@dataclass
class Event:
    at: float
    obj: str
    reason: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at, "obj": self.obj, "reason": self.reason, "message": self.message}


def _resolve(value: int | str, total: int, round_up: bool) -> int:
    """maxSurge / maxUnavailable: a number or a percentage of replicas."""
    if isinstance(value, int):
        return value
    if value.endswith("%"):
        share = total * float(value[:-1]) / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(value)


class Lab:
    def __init__(self, manifests: Manifests, options: Options, workdir: Path) -> None:
        self.manifests = manifests
        self.options = options
        self.workdir = workdir
        self.namespace = manifests.namespace
        self.network = HostNetwork(manifests.namespace)
        # The engine that runs the project's images; None runs them from the checkout.
        self.images: ImageRuntime | None = None
        self.ipt = Iptables()
        self.proxier = Proxier(
            make_mode(options.proxy_mode),
            options.min_sync_period,
            self._on_sync,
            lambda message: self.event("kube-proxy", "SyncFailed", message),
        )
        self.rng = random.Random(options.seed)
        self.pods: dict[str, Pod] = {}
        self.workers: dict[str, PodWorker] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.cluster_ips: dict[str, str] = {}
        self.templates: dict[str, PodTemplate] = {
            key: wl.template for key, wl in manifests.workloads.items()
        }
        self.replicas: dict[str, int] = {k: w.replicas for k, w in manifests.workloads.items()}
        self.events: deque[Event] = deque(maxlen=500)
        self.endpoint_rules: list[ServicePortRules] = []
        self._ready_sets: dict[str, tuple[str, ...]] = {}
        self._dirty: asyncio.Event | None = None
        self._last_ip = int(NODE_GATEWAY) - int(NODE_POD_CIDR.network_address)
        self.stopping = False
        self.started_at = time.time()
        self.forward: Any = None
        self.policies: list[Policy] = self._parse_policies(manifests)

    def _parse_policies(self, manifests: Manifests) -> list[Policy]:
        if not self.options.network_policies:
            return []
        return [parse_policy(doc, manifests.namespace) for doc in manifests.network_policies]

    # -- set-up ----------------------------------------------------------------

    def allocate_service_ips(self) -> None:
        taken: set[str] = set()
        for name, svc in sorted(self.manifests.services.items()):
            if svc.headless:
                continue
            if svc.cluster_ip:
                if ipaddress.ip_address(svc.cluster_ip) not in SERVICE_CIDR:
                    raise ManifestError(
                        f"Service {name}: clusterIP {svc.cluster_ip} is outside {SERVICE_CIDR}"
                    )
                taken.add(svc.cluster_ip)
        for name, svc in sorted(self.manifests.services.items()):
            if svc.headless:
                continue
            ip = svc.cluster_ip or service_ip(self.namespace, name, taken)
            taken.add(ip)
            self.cluster_ips[name] = ip

    def setup_network(self) -> None:
        """The node, in the order that keeps it safe at every step."""
        self.allocate_service_ips()
        for warning in self.network.add_unreachable_routes():
            self.event("node", "Warning", warning)
        self.proxier.update(self._compute_endpoints(), self._compute_netpol())
        self.proxier.sync_now()  # safety chains and REJECTs, before any interface exists
        self.ipt.install_hooks(self.proxier.mode.hooks)
        self.network.create_node_iface()
        for ip in self.cluster_ips.values():
            self.network.add_service_ip(ip)

    # -- what the kubelet asks of us ------------------------------------------

    def notify(self) -> None:
        if self._dirty is not None:
            self._dirty.set()

    def event(self, obj: str, reason: str, message: str) -> None:
        event = Event(time.time(), obj, reason, message)
        self.events.append(event)
        if self.options.print_events:
            stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
            print(f"{stamp}  {obj:<34} {reason:<10} {message}", flush=True)

    def service_ips(self) -> dict[str, str]:
        return dict(self.cluster_ips)

    def service_env(self) -> dict[str, str]:
        services = [
            (svc, self.cluster_ips.get(name, ""))
            for name, svc in self.manifests.services.items()
            if not svc.headless
        ]
        return service_link_env(services)

    def config_maps(self) -> Mapping[str, Mapping[str, str]]:
        return self.manifests.config_maps

    def secrets(self) -> Mapping[str, Mapping[str, str]]:
        return self.manifests.secrets

    def pod_gone(self, pod: Pod) -> None:
        self.pods.pop(pod.name, None)
        self.workers.pop(pod.name, None)

    # -- controllers ---------------------------------------------------------

    def _allocate_ip(self) -> str:
        """host-local IPAM: the next free address after the last one handed out."""
        in_use = {p.ip for p in self.pods.values()}
        size = NODE_POD_CIDR.num_addresses
        for step in range(1, size):
            offset = (self._last_ip + step) % size
            if offset < 2 or offset == size - 1:
                continue
            ip = str(NODE_POD_CIDR.network_address + offset)
            if ip not in in_use:
                self._last_ip = offset
                return ip
        raise RuntimeError(f"no free pod IP left in {NODE_POD_CIDR}")

    def _pods_of(self, key: str) -> list[Pod]:
        wl = self.manifests.workloads[key]
        return [p for p in self.pods.values() if p.workload is wl]

    def _create_pod(
        self,
        key: str,
        name: str,
        labels: dict[str, str],
        template_hash_: str,
        ordinal: int | None = None,
        aliases: list[str] | None = None,
    ) -> Pod:
        wl = self.manifests.workloads[key]
        pod = Pod(
            name=name,
            namespace=self.namespace,
            workload=wl,
            template=self.templates[key],
            labels=labels,
            ip=self._allocate_ip(),
            hostname_aliases=aliases or [],
            template_hash=template_hash_,
            ordinal=ordinal,
        )
        worker = PodWorker(self, pod)
        self.pods[name] = pod
        self.workers[name] = worker
        self.event(f"{wl.kind.lower()}/{wl.name}", "Created", f"pod {name}")
        task = asyncio.create_task(worker.run(), name=f"pod {name}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return pod

    def current_hash(self, key: str) -> str:
        return template_hash(template_fingerprint(self.templates[key]))

    def _reconcile_deployment(self, key: str) -> None:
        wl = self.manifests.workloads[key]
        want = self.replicas[key]
        new_hash = self.current_hash(key)
        live = [p for p in self._pods_of(key) if not p.deleting]
        new = [p for p in live if p.template_hash == new_hash]
        old = [p for p in live if p.template_hash != new_hash]

        def create() -> None:
            name = f"{wl.name}-{new_hash}-{random_suffix(self.rng)}"
            while name in self.pods:
                name = f"{wl.name}-{new_hash}-{random_suffix(self.rng)}"
            labels = {**self.templates[key].labels, "pod-template-hash": new_hash}
            new.append(self._create_pod(key, name, labels, new_hash))

        def delete(pods: Sequence[Pod], count: int) -> None:
            # As the ReplicaSet controller: not-ready pods first, then the newest.
            ranked = sorted(pods, key=lambda p: (p.ready, -p.created_at))
            for pod in ranked[:count]:
                self.workers[pod.name].request_delete()

        if not old:
            for _ in range(want - len(new)):
                create()
            if len(new) > want:
                delete(new, len(new) - want)
            return
        if wl.strategy.kind == "Recreate":
            delete(old, len(old))
            return
        surge = _resolve(wl.strategy.max_surge, want, round_up=True)
        unavailable = _resolve(wl.strategy.max_unavailable, want, round_up=False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        while len(new) < want and len(new) + len(old) < want + surge:
            create()
        # Old pods that are not ready cost no availability: they go first.
        unhealthy = [p for p in old if not p.ready]
        if unhealthy:
            delete(unhealthy, len(unhealthy))
            old = [p for p in old if p.ready]
        ready = sum(p.ready for p in new) + len(old)
        can_remove = ready - (want - unavailable)
        if can_remove > 0 and old:
            delete(old, min(can_remove, len(old)))

    def _reconcile_statefulset(self, key: str) -> None:
        wl = self.manifests.workloads[key]
        want = self.replicas[key]
        rev = self.current_hash(key)
        pods = {p.ordinal: p for p in self._pods_of(key)}
        for ordinal in range(want):
            pod = pods.get(ordinal)
            if pod is None:
                name = f"{wl.name}-{ordinal}"
                labels = {
                    **self.templates[key].labels,
                    "statefulset.kubernetes.io/pod-name": name,
                    "apps.kubernetes.io/pod-index": str(ordinal),
                    "controller-revision-hash": f"{wl.name}-{rev}",
                }
                alias = f"{name}.{wl.service_name}.{self.namespace}.svc.cluster.local"
                self._create_pod(key, name, labels, rev, ordinal, [alias])
                return  # OrderedReady: one at a time
            if not pod.ready:
                return
        extra = sorted((o for o in pods if o is not None and o >= want), reverse=True)
        if extra and all(p.ready or p.deleting for p in pods.values()):
            worker = self.workers.get(pods[extra[0]].name)
            if worker is not None:
                worker.request_delete()

    # -- EndpointSlices ----------------------------------------------------------

    def _compute_endpoints(self) -> list[ServicePortRules]:
        rules: list[ServicePortRules] = []
        for name, svc in sorted(self.manifests.services.items()):
            ip = self.cluster_ips.get(name)
            if ip is None:
                continue
            selector = Selector.from_labels(svc.selector) if svc.selector else None
            pods = [
                p
                for p in self.pods.values()
                if selector is not None
                and selector.matches(p.labels)
                and p.net is not None
                and not p.gone
                and p.phase != "Failed"
            ]
            for port in svc.ports:
                endpoints = []
                for pod in pods:
                    target = _target_port(port.target_port, pod.template)
                    if target is None:
                        continue
                    endpoints.append(
                        Endpoint(
                            ip=pod.ip,
                            port=target,
                            pod=pod.name,
                            ready=pod.ready,
                            serving=pod.serving,
                            terminating=pod.deleting,
                        )
                    )
                endpoints.sort(key=lambda e: ipaddress.ip_address(e.ip))
                rules.append(
                    ServicePortRules(
                        svc.port_name(port),
                        ip,
                        port.port,
                        port.protocol,
                        tuple(endpoints),
                        svc.affinity_timeout,
                    )
                )
        return rules

    def _compute_netpol(self) -> tuple[list[str], list[list[str]]]:
        refs = []
        for pod in self.pods.values():
            if pod.gone:
                continue
            ports = {
                p.name: (p.port, p.protocol)
                for c in pod.template.containers
                for p in c.ports
                if p.name
            }
            refs.append(
                PodRef(pod.name, pod.namespace, pod.ip, host_iface(pod.name), pod.labels, ports)
            )
        return compile_policies(self.policies, refs, self.manifests.namespace_labels)

    def _update_endpoints(self) -> None:
        rules = self._compute_endpoints()
        self.endpoint_rules = rules
        for rule in rules:
            ready = tuple(f"{e.ip}:{e.port}" for e in rule.usable())
            if self._ready_sets.get(rule.port_name) != ready:
                self._ready_sets[rule.port_name] = ready
                self.event(
                    f"endpointslice/{rule.port_name.split('/')[1]}",
                    "Updated",
                    f"{len(ready)} ready: {', '.join(ready) or '(none)'}",
                )
        self.proxier.update(rules, self._compute_netpol())

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
                    for key, wl in self.manifests.workloads.items():
                        if wl.kind == "Deployment":
                            self._reconcile_deployment(key)
                        else:
                            self._reconcile_statefulset(key)
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
        for key in self.manifests.workloads:
            ready = [p for p in self._pods_of(key) if p.ready]
            if len(ready) != self.replicas[key]:
                return False
            if any(p.template_hash != self.current_hash(key) for p in self._pods_of(key)):
                return False
        return self.proxier.wanted_key == self.proxier.applied_key

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

    # -- actions (the control socket's commands) ------------------------------

    def find_workload(self, ref: str) -> str:
        kind, _, name = ref.partition("/")
        kinds = {
            "deployment": "Deployment",
            "deploy": "Deployment",
            "statefulset": "StatefulSet",
            "sts": "StatefulSet",
        }
        if not name:
            matches = [k for k in self.manifests.workloads if k.split("/")[1] == ref]
        else:
            matches = [f"{kinds.get(kind.lower(), kind)}/{name}"]
        if len(matches) != 1 or matches[0] not in self.manifests.workloads:
            raise KeyError(f"no workload {ref!r} (try deployment/backend, statefulset/mysql)")
        return matches[0]

    def scale(self, ref: str, replicas: int) -> str:
        key = self.find_workload(ref)
        if replicas < 0:
            raise ValueError("replicas must be 0 or more")
        self.replicas[key] = replicas
        self.event(key.lower(), "Scaled", f"replicas: {replicas}")
        self.notify()
        return key

    def rollout_restart(self, ref: str) -> str:
        """`kubectl rollout restart`: a new template annotation, so a new ReplicaSet."""
        key = self.find_workload(ref)
        template = self.templates[key]
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() % 10**9}"
        raw = dict(template.raw)
        metadata = dict(raw.get("metadata") or {})
        metadata["annotations"] = {
            **(metadata.get("annotations") or {}),
            "kubectl.kubernetes.io/restartedAt": stamp,
        }
        raw["metadata"] = metadata
        self.templates[key] = replace(template, annotations=dict(metadata["annotations"]), raw=raw)
        self.event(key.lower(), "Restart", f"new pod-template-hash {self.current_hash(key)}")
        self.notify()
        return key

    def apply(self, new: Manifests) -> list[str]:
        """`kubectl apply`: new ConfigMaps, Secrets, NetworkPolicies, replicas and templates.

        A changed pod template rolls its Deployment out (new pod-template-hash);
        Services and the set of workloads must stay as they are.
        """
        if new.namespace != self.manifests.namespace:
            raise ValueError(f"namespace {new.namespace} is not the lab's {self.namespace}")
        for name, svc in new.services.items():
            old = self.manifests.services.get(name)
            if old is None or (old.selector, old.ports, old.cluster_ip, old.affinity_timeout) != (
                svc.selector,
                svc.ports,
                svc.cluster_ip,
                svc.affinity_timeout,
            ):
                raise ValueError(f"Service {name} changed: restart the lab for that")
        if set(new.services) != set(self.manifests.services):
            raise ValueError("Services were added or removed: restart the lab for that")
        if set(new.workloads) != set(self.manifests.workloads):
            raise ValueError("workloads were added or removed: restart the lab for that")
        policies = self._parse_policies(new)
        changes = []
        for key, wl in new.workloads.items():
            current = self.manifests.workloads[key]
            if template_fingerprint(wl.template) != template_fingerprint(self.templates[key]):
                self.templates[key] = wl.template
                changes.append(f"{key}: new pod template ({self.current_hash(key)})")
            if wl.replicas != self.replicas[key]:
                changes.append(f"{key}: replicas {self.replicas[key]} → {wl.replicas}")
                self.replicas[key] = wl.replicas
            current.strategy = wl.strategy
        before = {p.name for p in self.policies}
        after = {p.name for p in policies}
        for name in sorted(before - after):
            changes.append(f"networkpolicy/{name} deleted")
        for name in sorted(after - before):
            changes.append(f"networkpolicy/{name} created")
        self.manifests.config_maps = new.config_maps
        self.manifests.secrets = new.secrets
        self.manifests.network_policies = new.network_policies
        self.manifests.namespace_labels = new.namespace_labels
        self.policies = policies
        for change in changes:
            self.event("apply", "Configured", change)
        self.notify()
        return changes

    def pod(self, name: str) -> Pod:
        pod = self.pods.get(name)
        if pod is None:
            matches = [p for p in self.pods.values() if p.name.startswith(name)]
            if len(matches) != 1:
                raise KeyError(f"no pod {name!r}")
            pod = matches[0]
        return pod

    def kill(self, name: str, container: str | None = None, sig: int = signal.SIGKILL) -> int:
        pod = self.pod(name)
        return self.workers[pod.name].kill_process(container, sig)

    def delete(self, name: str, grace: float | None = None) -> str:
        pod = self.pod(name)
        self.workers[pod.name].request_delete(grace=grace)
        return pod.name

    # -- status ----------------------------------------------------------------

    def _workload_status(self, key: str) -> dict[str, Any]:
        """What `kubectl rollout status` looks at."""
        current = self.current_hash(key)
        live = [p for p in self._pods_of(key) if not p.deleting]
        updated = [p for p in live if p.template_hash == current]
        return {
            "key": key,
            "replicas": self.replicas[key],
            "template_hash": current,
            "updated": len(updated),
            "updated_ready": sum(p.ready for p in updated),
            "old": len(live) - len(updated),
            "terminating": sum(p.deleting for p in self._pods_of(key)),
        }

    def status(self) -> dict[str, Any]:
        services = []
        for name, svc in sorted(self.manifests.services.items()):
            services.append(
                {
                    "name": name,
                    "type": "ClusterIP",
                    "cluster_ip": self.cluster_ips.get(name, "None"),
                    "selector": svc.selector,
                    "ports": [
                        {
                            "name": p.name,
                            "port": p.port,
                            "target_port": p.target_port,
                            "protocol": p.protocol,
                        }
                        for p in svc.ports
                    ],
                }
            )
        endpoints = [
            {
                "service": rule.port_name.split("/")[1].split(":")[0],
                "port_name": rule.port_name,
                "cluster_ip": rule.cluster_ip,
                "port": rule.port,
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
            "services": services,
            "endpoints": endpoints,
            "workloads": [self._workload_status(key) for key in self.manifests.workloads],
            "network_policies": sorted(p.name for p in self.policies),
            "proxy_mode": self.proxier.mode.name,
            "iptables": {
                "syncs": self.proxier.syncs,
                "synced": self.proxier.wanted_key == self.proxier.applied_key,
            },
            "events": [e.as_dict() for e in list(self.events)[-200:]],
        }


def _target_port(target: int | str, template: PodTemplate) -> int | None:
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for container in template.containers:
        port = container.port_number(target)
        if port is not None:
            return port
    return None
