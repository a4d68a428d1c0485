"""The kubelet's pod manager and status manager, on the API server's Pods.

The pods bound to this node (spec.nodeName) come from an informer; each new one gets
an address (host-local IPAM) and a PodWorker (lab/kubelet.py) that runs it. A pod
marked for deletion (deletionTimestamp) is stopped with its deletionGracePeriodSeconds;
once its containers and network are gone the kubelet deletes it for good (grace 0).
Whenever a worker changes something, the pods' statuses are written back, each only
when it differs from what was last written.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Callable
from typing import Any

from lab.kubelet import Cluster, Pod, PodWorker
from lab.manifests import ManifestError, PodTemplate
from lab.node.client import ApiError, ApiUnavailable, Client, Obj
from lab.node.ipam import HostLocal
from lab.node.podstatus import status_of

# Fields the API server or its controllers set on a pod, not the workload's author:
# the kubelet acts on them here, not through the template's field checks.
SET_BY_THE_API = ("nodeName", "hostname", "subdomain")


def pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}"


def workload_of(obj: Obj) -> str:
    """The workload that owns the pod, "Kind/name" (a ReplicaSet's pod: its Deployment)."""
    refs = obj["metadata"].get("ownerReferences") or []
    owner = next((r for r in refs if r.get("controller")), None)
    if owner is None:
        return f"Pod/{obj['metadata']['name']}"
    if owner["kind"] == "ReplicaSet":
        template_hash = obj["metadata"].get("labels", {}).get("pod-template-hash", "")
        return f"Deployment/{owner['name'].removesuffix('-' + template_hash)}"
    return f"{owner['kind']}/{owner['name']}"


def kubelet_pod(obj: Obj, ip: str) -> Pod:
    """The kubelet's own view of a Pod object: its parsed template and its address."""
    meta, spec = obj["metadata"], copy.deepcopy(obj["spec"])
    volumes = spec.get("volumes") or []
    claims = tuple(v["name"] for v in volumes if "persistentVolumeClaim" in v)
    spec["volumes"] = [v for v in volumes if "persistentVolumeClaim" not in v]
    for field in SET_BY_THE_API:
        spec.pop(field, None)
    template = PodTemplate.parse(
        {"metadata": meta, "spec": spec}, f"pod {meta['namespace']}/{meta['name']}", claims
    )
    aliases = []
    hostname, subdomain = obj["spec"].get("hostname"), obj["spec"].get("subdomain")
    if hostname and subdomain:
        aliases.append(f"{hostname}.{subdomain}.{meta['namespace']}.svc.cluster.local")
    ordinal = meta.get("labels", {}).get("apps.kubernetes.io/pod-index")
    return Pod(
        name=meta["name"],
        namespace=meta["namespace"],
        workload=workload_of(obj),
        template=template,
        labels=dict(meta.get("labels") or {}),
        ip=ip,
        hostname_aliases=aliases,
        uid=meta["uid"],
        template_hash=meta.get("labels", {}).get("pod-template-hash", ""),
        ordinal=int(ordinal) if ordinal is not None else None,
    )


class PodManager:
    def __init__(
        self,
        host: Cluster,
        client: Client,
        spawn: Callable[[Any, str], None],
    ) -> None:
        self.host = host
        self.client = client
        self.spawn = spawn  # runs a coroutine as one of the lab's tasks
        self.ipam = HostLocal(host.node.pod_cidr)
        self.workers: dict[str, PodWorker] = {}  # by uid
        self.written: dict[str, Obj] = {}  # the status last written, by uid
        self.stopping = False

    def sync(self, pods: list[Obj]) -> None:
        """Start what is new, stop what is marked for deletion or gone from the API."""
        seen = set()
        for obj in pods:
            if obj["spec"].get("nodeName") != self.host.node.name:
                continue
            meta = obj["metadata"]
            seen.add(meta["uid"])
            worker = self.workers.get(meta["uid"])
            if worker is None:
                if meta.get("deletionTimestamp"):
                    self.spawn(self._remove(meta["namespace"], meta["name"], meta["uid"]), "rm")
                elif not self.stopping:
                    self._start(obj)
            elif meta.get("deletionTimestamp") and not worker.pod.deleting:
                worker.request_delete(grace=meta.get("deletionGracePeriodSeconds"))
        for uid, worker in list(self.workers.items()):
            if uid not in seen and not worker.pod.deleting:
                worker.request_delete(grace=0)  # deleted with --force: stop at once

    def _start(self, obj: Obj) -> None:
        ip = self.ipam.allocate()
        try:
            pod = kubelet_pod(obj, ip)
        except ManifestError as exc:
            self.ipam.release(ip)
            self.host.event(f"pod/{obj['metadata']['name']}", "Failed", str(exc))
            return
        pod.node_name, pod.host_ip = self.host.node.name, self.host.node.address
        worker = PodWorker(self.host, pod)
        self.workers[pod.uid] = worker
        self.spawn(worker.run(), f"pod {pod.name}")

    def gone(self, pod: Pod) -> None:
        """The worker tore the pod down: free its address and delete it for good."""
        self.workers.pop(pod.uid, None)
        self.written.pop(pod.uid, None)
        self.ipam.release(pod.ip)
        self.spawn(self._remove(pod.namespace, pod.name, pod.uid), f"remove {pod.name}")

    async def _remove(self, namespace: str, name: str, uid: str) -> None:
        with contextlib.suppress(ApiError, ApiUnavailable):
            current = await self.client.get(pod_path(namespace, name))
            if current["metadata"]["uid"] == uid:
                await self.client.delete(pod_path(namespace, name), grace=0)

    def resync(self) -> None:
        """Forget what was written: the next pass writes every pod's status again.

        For a node back from silence (its heartbeat resumed): meanwhile the
        node-lifecycle controller marked its pods Ready=False in the API, which this
        cache cannot know, so without a resync a ready pod would stay unready there."""
        self.written.clear()

    async def write_statuses(self) -> None:
        """The status manager's pass: each pod whose status changed, written once."""
        for uid, worker in list(self.workers.items()):
            pod = worker.pod
            if pod.gone:
                continue
            status = status_of(pod)
            if self.written.get(uid) == status:
                continue
            body = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod.name, "namespace": pod.namespace, "uid": uid},
                "status": status,
            }
            try:
                await self.client.replace(pod_path(pod.namespace, pod.name) + "/status", body)
            except ApiError as exc:
                if exc.code == 404:
                    self.written[uid] = status  # deleted meanwhile: nothing to report to
                continue
            except ApiUnavailable:
                await asyncio.sleep(0.2)
                continue
            self.written[uid] = status
