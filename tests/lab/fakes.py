"""A fake kubelet for the root-free tests: it changes the API objects as the kubelet would.

It registers on the lab's Node (so the API server deletes its pods gracefully), turns
each pod bound to the node into the kubelet's own Pod (lab/node/pods.kubelet_pod) with
an address from host-local IPAM, and writes the status the real status manager writes
(lab/node/podstatus.status_of) for containers that run and pass, or fail, readiness.
No process, no network: only what the API server would be told.
"""

from __future__ import annotations

from lab.api.resources import lookup
from lab.api.storage import Store
from lab.kubelet import ContainerState, Pod
from lab.naming import NODE_NAME, host_iface
from lab.network import PodNetwork
from lab.node.deploy import KUBELET_PORT
from lab.node.ipam import HostLocal
from lab.node.pods import kubelet_pod
from lab.node.podstatus import status_of

PODS = lookup("", "v1", "pods")
NODES = lookup("", "v1", "nodes")
assert PODS and NODES


class FakeKubelet:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.ipam = HostLocal()
        self.pods: dict[str, Pod] = {}  # by name, the pods it started
        node = store.get(NODES, "", NODE_NAME)
        node.setdefault("status", {})["daemonEndpoints"] = {
            "kubeletEndpoint": {"Port": KUBELET_PORT}
        }
        store.update(NODES, node, "status")

    def run_pods(self) -> list[str]:
        """Start every pod bound to this node that it has not started: running and ready."""
        started = []
        for obj in self.store.list(PODS)[0]:
            meta = obj["metadata"]
            if obj["spec"].get("nodeName") != NODE_NAME or meta.get("deletionTimestamp"):
                continue
            known = self.pods.get(meta["name"])
            if known is not None and known.uid == meta["uid"]:
                continue
            pod = kubelet_pod(obj, self.ipam.allocate())
            pod.net = PodNetwork(pod.name, pod.ip, pod.netns, host_iface(pod.name))
            pod.phase, pod.init_done = "Running", True
            pod.containers = {
                c.name: ContainerState(c.name, state="running", reason="", started=True, ready=True)
                for c in pod.template.containers
            }
            self.pods[pod.name] = pod
            self.write(pod)
            started.append(pod.name)
        return started

    def set_ready(self, name: str, ready: bool) -> None:
        """Its readiness probe fails (or passes again): the container stays running."""
        pod = self.pods[name]
        for container in pod.containers.values():
            container.ready = ready
        self.write(pod)

    def write(self, pod: Pod) -> None:
        current = self.store.get(PODS, pod.namespace, pod.name)
        current["status"] = status_of(pod)
        self.store.update(PODS, current, "status")
