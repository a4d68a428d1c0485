"""The lab's state, as the API server holds it: workloads, pods, Services, IPs, events.

Nothing here starts a process or touches the network: the controllers
(lab/controllers/) read and write this state, the kubelet runs what it
says, kube-proxy renders rules from it. The writes `kubectl` makes (scale,
rollout restart, apply) are here too, since they only change objects; each
one tells the watchers (the controllers' loop) through `on_change`.

Two namespaces: the app's, from the rendered manifests, and `kube-system`,
where the lab adds what every cluster has (the kube-dns Service and its pod,
lab/dns.py's `system_objects`).
"""

from __future__ import annotations

import ipaddress
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from lab.kubelet import Pod
from lab.manifests import ManifestError, Manifests, PodTemplate, Service, template_fingerprint
from lab.naming import NODE_GATEWAY, NODE_POD_CIDR, SERVICE_CIDR, service_ip, template_hash
from lab.netpol import Policy, parse_policy

SYSTEM_NAMESPACE = "kube-system"


@dataclass
class Event:
    at: float
    obj: str
    reason: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at, "obj": self.obj, "reason": self.reason, "message": self.message}


@dataclass
class SystemObjects:
    """What the lab adds in kube-system: Services and workloads the manifests do not carry."""

    services: list[Service]
    workloads: dict[str, Any]  # key "Kind/name" → Workload


def service_key(svc: Service) -> str:
    return f"{svc.namespace}/{svc.name}"


class ApiServer:
    def __init__(
        self,
        manifests: Manifests,
        system: SystemObjects | None = None,
        *,
        seed: int | None = None,
        network_policies: bool = True,
        print_events: bool = True,
    ) -> None:
        self.manifests = manifests
        self.namespace = manifests.namespace
        self.system = system or SystemObjects([], {})
        self.enforce_policies = network_policies
        self.print_events = print_events
        self.rng = random.Random(seed)
        # App workloads first, so status lists them as before; kube-system's after.
        self.workloads = {**manifests.workloads, **self.system.workloads}
        self.templates: dict[str, PodTemplate] = {k: w.template for k, w in self.workloads.items()}
        self.replicas: dict[str, int] = {k: w.replicas for k, w in self.workloads.items()}
        self.pods: dict[str, Pod] = {}
        # "namespace/name" → ClusterIP; headless Services have none.
        self.cluster_ips: dict[str, str] = {}
        self.events: deque[Event] = deque(maxlen=500)
        self.policies: list[Policy] = self._parse_policies(manifests)
        self._last_ip = int(NODE_GATEWAY) - int(NODE_POD_CIDR.network_address)
        self.on_change: Callable[[], None] = lambda: None
        self._namespace_labels()

    def _namespace_labels(self) -> None:
        # The API server labels every namespace with its own name: how a
        # namespaceSelector (allow-dns-egress's) finds kube-system.
        for svc in self.system.services:
            labels = self.manifests.namespace_labels.setdefault(svc.namespace, {})
            labels["kubernetes.io/metadata.name"] = svc.namespace

    def _parse_policies(self, manifests: Manifests) -> list[Policy]:
        if not self.enforce_policies:
            return []
        return [parse_policy(doc, manifests.namespace) for doc in manifests.network_policies]

    # -- objects ---------------------------------------------------------------

    def services(self) -> list[Service]:
        """Every Service, sorted as `kubectl get svc -A` lists them."""
        every = [*self.manifests.services.values(), *self.system.services]
        return sorted(every, key=lambda s: (s.namespace, s.name))

    def cluster_ip(self, svc: Service) -> str | None:
        return self.cluster_ips.get(service_key(svc))

    def app_cluster_ips(self) -> dict[str, str]:
        """name → ClusterIP for the app's namespace (what its pods' env and the CLI use)."""
        return {
            name: ip
            for name, svc in self.manifests.services.items()
            if (ip := self.cluster_ip(svc)) is not None
        }

    def event(self, obj: str, reason: str, message: str) -> None:
        event = Event(time.time(), obj, reason, message)
        self.events.append(event)
        if self.print_events:
            stamp = time.strftime("%H:%M:%S", time.localtime(event.at))
            print(f"{stamp}  {obj:<34} {reason:<10} {message}", flush=True)

    def changed(self) -> None:
        self.on_change()

    # -- allocation --------------------------------------------------------------

    def allocate_service_ips(self) -> None:
        """A ClusterIP for each non-headless Service: its own if written, else one from its name."""
        taken: set[str] = set()
        for svc in self.services():
            if svc.headless or not svc.cluster_ip:
                continue
            if ipaddress.ip_address(svc.cluster_ip) not in SERVICE_CIDR:
                raise ManifestError(
                    f"Service {svc.name}: clusterIP {svc.cluster_ip} is outside {SERVICE_CIDR}"
                )
            if svc.cluster_ip in taken:
                raise ManifestError(f"Service {svc.name}: clusterIP {svc.cluster_ip} is taken")
            taken.add(svc.cluster_ip)
        for svc in self.services():
            if svc.headless:
                continue
            ip = svc.cluster_ip or service_ip(svc.namespace, svc.name, taken)
            taken.add(ip)
            self.cluster_ips[service_key(svc)] = ip

    def allocate_pod_ip(self) -> str:
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

    # -- pods --------------------------------------------------------------------

    def new_pod(
        self,
        key: str,
        name: str,
        labels: dict[str, str],
        template_hash_: str,
        ordinal: int | None = None,
        aliases: list[str] | None = None,
    ) -> Pod:
        """A pod object with its IP, stored; the controller then hands it to the kubelet."""
        wl = self.workloads[key]
        pod = Pod(
            name=name,
            namespace=wl.namespace,
            workload=wl,
            template=self.templates[key],
            labels=labels,
            ip=self.allocate_pod_ip(),
            hostname_aliases=aliases or [],
            template_hash=template_hash_,
            ordinal=ordinal,
        )
        self.pods[name] = pod
        self.event(f"{wl.kind.lower()}/{wl.name}", "Created", f"pod {name}")
        return pod

    def pods_of(self, key: str) -> list[Pod]:
        wl = self.workloads[key]
        return [p for p in self.pods.values() if p.workload is wl]

    def current_hash(self, key: str) -> str:
        return template_hash(template_fingerprint(self.templates[key]))

    def find_pod(self, name: str) -> Pod:
        pod = self.pods.get(name)
        if pod is None:
            matches = [p for p in self.pods.values() if p.name.startswith(name)]
            if len(matches) != 1:
                raise KeyError(f"no pod {name!r}")
            pod = matches[0]
        return pod

    def find_workload(self, ref: str) -> str:
        kind, _, name = ref.partition("/")
        kinds = {
            "deployment": "Deployment",
            "deploy": "Deployment",
            "statefulset": "StatefulSet",
            "sts": "StatefulSet",
        }
        if not name:
            matches = [k for k in self.workloads if k.split("/")[1] == ref]
        else:
            matches = [f"{kinds.get(kind.lower(), kind)}/{name}"]
        if len(matches) != 1 or matches[0] not in self.workloads:
            raise KeyError(f"no workload {ref!r} (try deployment/backend, statefulset/mysql)")
        return matches[0]

    # -- kubectl's writes --------------------------------------------------------

    def scale(self, ref: str, replicas: int) -> str:
        key = self.find_workload(ref)
        if replicas < 0:
            raise ValueError("replicas must be 0 or more")
        self.replicas[key] = replicas
        self.event(key.lower(), "Scaled", f"replicas: {replicas}")
        self.changed()
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
        self.changed()
        return key

    def apply(self, new: Manifests) -> list[str]:
        """`kubectl apply`: new ConfigMaps, Secrets, NetworkPolicies, replicas and templates.

        A changed pod template rolls its Deployment out (new pod-template-hash).
        A Service's selector and sessionAffinity may change, as on a cluster (the
        lesson's exercises break them on purpose); its ports and address, the set
        of Services and the set of workloads must stay as they are.
        """
        if new.namespace != self.manifests.namespace:
            raise ValueError(f"namespace {new.namespace} is not the lab's {self.namespace}")
        changes = self._service_changes(new)
        if set(new.services) != set(self.manifests.services):
            raise ValueError("Services were added or removed: restart the lab for that")
        if set(new.workloads) != set(self.manifests.workloads):
            raise ValueError("workloads were added or removed: restart the lab for that")
        policies = self._parse_policies(new)
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
        for name in self._changed_services(new):
            self.manifests.services[name] = new.services[name]
        self.manifests.config_maps = new.config_maps
        self.manifests.secrets = new.secrets
        self.manifests.network_policies = new.network_policies
        self.manifests.namespace_labels = new.namespace_labels
        self._namespace_labels()
        self.policies = policies
        for change in changes:
            self.event("apply", "Configured", change)
        self.changed()
        return changes

    def _changed_services(self, new: Manifests) -> list[str]:
        return [
            name
            for name, svc in new.services.items()
            if name in self.manifests.services and svc != self.manifests.services[name]
        ]

    def _service_changes(self, new: Manifests) -> list[str]:
        """What a Service's apply changes; raises on what the lab cannot change live."""
        changes = []
        for name in self._changed_services(new):
            old, svc = self.manifests.services[name], new.services[name]
            if (old.ports, old.cluster_ip, old.headless) != (
                svc.ports,
                svc.cluster_ip,
                svc.headless,
            ):
                raise ValueError(
                    f"Service {name}: its ports or address changed: restart the lab for that"
                )
            if svc.selector != old.selector:
                changes.append(f"service/{name}: selector {_selector(svc.selector)}")
            if svc.affinity_timeout != old.affinity_timeout:
                affinity = (
                    "None"
                    if svc.affinity_timeout is None
                    else f"ClientIP ({svc.affinity_timeout}s)"
                )
                changes.append(f"service/{name}: sessionAffinity {affinity}")
        return changes

    # -- what status shows -------------------------------------------------------

    def workload_status(self, key: str) -> dict[str, Any]:
        """What `kubectl rollout status` looks at."""
        current = self.current_hash(key)
        live = [p for p in self.pods_of(key) if not p.deleting]
        updated = [p for p in live if p.template_hash == current]
        return {
            "key": key,
            "namespace": self.workloads[key].namespace,
            "replicas": self.replicas[key],
            "template_hash": current,
            "updated": len(updated),
            "updated_ready": sum(p.ready for p in updated),
            "old": len(live) - len(updated),
            "terminating": sum(p.deleting for p in self.pods_of(key)),
        }

    def workloads_ready(self) -> bool:
        for key in self.workloads:
            pods = self.pods_of(key)
            if sum(p.ready for p in pods) != self.replicas[key]:
                return False
            if any(p.template_hash != self.current_hash(key) for p in pods):
                return False
        return True

    def services_status(self) -> list[dict[str, Any]]:
        return [
            {
                "name": svc.name,
                "namespace": svc.namespace,
                "type": "ClusterIP",
                "cluster_ip": self.cluster_ip(svc) or "None",
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
            for svc in self.services()
        ]


def _selector(selector: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((selector or {}).items())) or "<none>"
