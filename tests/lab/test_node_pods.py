"""The kubelet's pod manager reading Pod objects: lab/node/pods.py. Root-free.

The Pods come from lab/api's own controllers (a Deployment's through its ReplicaSet, a
StatefulSet's with its claim and hostname) and the scheduler, so kubelet_pod reads what
the API server really stores. The PodManager runs against lab/api's verbs on a store
(graceful deletion included), with its pod workers replaced by ones that only record
what they are asked: no process, no network.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import json
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from lab.api import errors, graceful, leases, routes, verbs
from lab.api.controllers import nodelifecycle, scheduler
from lab.api.storage import Obj, Store
from lab.kubelet import ContainerState, Pod
from lab.manifests import ManifestError, Volume
from lab.naming import NODE_NAME
from lab.node import pods
from lab.node.client import ApiError
from lab.node.place import places
from lab.node.pods import kubelet_pod, pod_path, workload_of
from tests.lab import apicluster as api
from tests.lab.fakes import FakeKubelet

DATA_MOUNT = [{"name": "data", "mountPath": "/var/lib/db"}]
T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
CONTAINER = {"name": "db", "image": "db:1", "volumeMounts": DATA_MOUNT}


def _store_with_db() -> Any:
    """A StatefulSet `db` with a claim template `data`, governed by `db-headless`."""
    store = api.cluster()
    body = {
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 2,
            "serviceName": "db-headless",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [CONTAINER]},
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }
    api.create(store, "statefulsets", body, "apps")
    api.settle(store, scheduler)
    return store


def _deployment_pod() -> dict[str, Any]:
    store = api.cluster()
    labels = {"app": "web"}
    template = {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "web", "image": "web:1"}]},
    }
    body = {
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template},
    }
    api.create(store, "deployments", body, "apps")
    api.settle(store, scheduler)
    (pod,) = api.listed(store, "pods")
    return pod


def test_a_statefulset_pods_claim_becomes_a_volume_and_its_names_an_alias() -> None:
    obj = api.pods_of(_store_with_db(), "default", app="db")[1]
    assert obj["metadata"]["name"] == "db-1"
    assert obj["spec"]["nodeName"] == NODE_NAME  # set by the scheduler, not the template
    before = copy.deepcopy(obj)
    pod = kubelet_pod(obj, "10.244.1.7")
    assert (pod.name, pod.namespace, pod.ip, pod.uid) == (
        "db-1",
        "default",
        "10.244.1.7",
        obj["metadata"]["uid"],
    )
    assert pod.workload == "StatefulSet/db"
    assert pod.ordinal == 1
    # The claim the controller named data-db-1 is the pod's volume `data`, which it mounts.
    assert Volume("data", "persistentVolumeClaim") in pod.template.volumes
    assert pod.template.containers[0].volume_mounts == (("data", "/var/lib/db"),)
    # hostname and subdomain: the name the headless Service's DNS gives it, in /etc/hosts.
    assert pod.hostname_aliases == ["db-1.db-headless.default.svc.cluster.local"]
    assert pod.labels["statefulset.kubernetes.io/pod-name"] == "db-1"
    assert obj == before  # the informer's object is left as it was


def test_a_replicaset_pod_belongs_to_its_deployment() -> None:
    obj = _deployment_pod()
    template_hash = obj["metadata"]["labels"]["pod-template-hash"]
    (owner,) = obj["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"]) == ("ReplicaSet", f"web-{template_hash}")
    assert workload_of(obj) == "Deployment/web"
    pod = kubelet_pod(obj, "10.244.1.8")
    assert (pod.workload, pod.template_hash, pod.ordinal) == ("Deployment/web", template_hash, None)
    assert pod.hostname_aliases == []


def test_owners_other_than_a_replicaset_and_no_owner() -> None:
    def pod(refs: list[dict[str, Any]]) -> dict[str, Any]:
        return {"metadata": {"name": "p", "ownerReferences": refs}}

    assert workload_of(pod([])) == "Pod/p"
    # Only the controller reference counts.
    assert workload_of(pod([{"kind": "ReplicaSet", "name": "x-1"}])) == "Pod/p"
    job = {"kind": "Job", "name": "backup", "controller": True}
    assert workload_of(pod([job])) == "Job/backup"


def test_a_hostname_without_a_subdomain_is_no_alias() -> None:
    store = api.cluster()
    api.pod(store, "solo", "solo", "10.244.1.9", hostname="solo")
    obj = store.get(api.PODS, "default", "solo")
    pod = kubelet_pod(obj, "10.244.1.9")
    assert (pod.workload, pod.hostname_aliases) == ("Pod/solo", [])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"volumes": [{"name": "h", "hostPath": {"path": "/"}}]},
            r"volume h of kind \['hostPath'\] not supported",
        ),
        (
            {
                "containers": [
                    {"name": "c", "image": "i", "ports": [{"containerPort": 9, "protocol": "SCTP"}]}
                ]
            },
            "only TCP and UDP",
        ),
        ({"hostNetwork": True}, "hostNetwork: True is not supported"),
    ],
)
def test_what_the_kubelet_cannot_run_is_refused_naming_the_pod(
    change: dict[str, Any], message: str
) -> None:
    obj = _deployment_pod()
    obj["spec"].update(change)
    with pytest.raises(ManifestError, match=message) as caught:
        kubelet_pod(obj, "10.244.1.8")
    assert f"pod default/{obj['metadata']['name']}" in str(caught.value)


def test_the_pod_path_the_status_is_written_to() -> None:
    assert pod_path("ns", "web-1") == "/api/v1/namespaces/ns/pods/web-1"


# -- the pod manager against the API server's semantics -----------------------------------
class StoreClient:
    """The node's API client, answered by lab/api's verbs on a store instead of over HTTPS."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.writes: list[str] = []

    def _call(self, verb: Callable[..., Any], path: str, body: bytes) -> Obj:
        _, _, target = routes.parse(path)
        assert target is not None
        try:
            _, answer, _ = verb(self.store, target, body, {})
        except errors.ApiError as exc:
            raise ApiError(exc.code, exc.message) from exc
        return dict(answer)

    async def get(self, path: str) -> Obj:
        _, _, target = routes.parse(path)
        assert target is not None
        found = self.store.find(target.resource, target.namespace or "", target.name)
        if found is None:
            raise ApiError(404, f"{path} not found")
        return found

    async def replace(self, path: str, obj: Obj) -> Obj:
        self.writes.append(path)
        return self._call(verbs.update, path, json.dumps(obj).encode())

    async def delete(self, path: str, grace: int | None = None) -> Obj:
        body = json.dumps({"gracePeriodSeconds": grace}).encode() if grace is not None else b""
        return self._call(verbs.delete, path, body)


class RecordingWorker:
    """Stands for lab/kubelet.PodWorker: what the pod manager asks of it, nothing run."""

    def __init__(self, host: Any, pod: Pod) -> None:
        self.pod = pod
        self.deletes: list[float | None] = []

    async def run(self) -> None:
        return None

    def request_delete(self, grace: float | None = None) -> None:
        self.deletes.append(grace)
        self.pod.deleting = True


class Node:
    """The pod manager with a recording host and the lab's tasks collected, to run by hand."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(pods, "PodWorker", RecordingWorker)
        self.store = store
        self.events: list[tuple[str, str, str]] = []
        self.tasks: list[tuple[Coroutine[Any, Any, Any], str]] = []
        self.client = StoreClient(store)
        self.node = places(1)[0]  # the one-node lab's node: lab-node-1, on the host
        self.manager = pods.PodManager(self, self.client, self.spawn)  # type: ignore[arg-type]

    def event(self, obj: str, reason: str, message: str) -> None:
        self.events.append((obj, reason, message))

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        if name.startswith("pod "):
            coro.close()  # a recording worker's run: nothing to do
        self.tasks.append((coro, name))

    def sync(self) -> None:
        self.manager.sync(self.store.list(api.PODS)[0])

    def run_tasks(self) -> list[str]:
        tasks, self.tasks = self.tasks, []

        async def everything() -> None:
            for coro, name in tasks:
                if not name.startswith("pod "):
                    await coro

        asyncio.run(everything())
        return [name for _, name in tasks]

    def worker(self, name: str) -> RecordingWorker:
        (found,) = [w for w in self.manager.workers.values() if w.pod.name == name]
        return found  # type: ignore[return-value]


def _registered_cluster() -> Store:
    store = api.cluster()
    FakeKubelet(store)  # only its registration on the Node: deletes are graceful
    return store


def _pending(store: Store, name: str, **spec: Any) -> None:
    containers = [{"name": "c", "image": "app:1"}]
    body = {"metadata": {"name": name, "labels": {"app": "x"}}, "spec": {"containers": containers}}
    body["spec"].update(spec)
    api.create(store, "pods", body)


def test_the_pod_manager_starts_this_nodes_pods_each_once(monkeypatch: pytest.MonkeyPatch) -> None:
    store = _registered_cluster()
    _pending(store, "a", nodeName=NODE_NAME)
    _pending(store, "elsewhere", nodeName="lab-node-2")
    _pending(store, "b", nodeName=NODE_NAME)
    _pending(store, "unscheduled")
    node = Node(store, monkeypatch)
    node.sync()
    assert sorted(w.pod.name for w in node.manager.workers.values()) == ["a", "b"]
    assert {w.pod.name: w.pod.ip for w in node.manager.workers.values()} == {
        "a": "10.244.1.2",
        "b": "10.244.1.3",
    }
    assert sorted(name for _, name in node.tasks) == ["pod a", "pod b"]
    node.run_tasks()
    node.sync()
    assert node.tasks == [] and len(node.manager.workers) == 2
    # Stopping: nothing new starts.
    node.manager.stopping = True
    _pending(store, "late", nodeName=NODE_NAME)
    node.sync()
    assert "late" not in {w.pod.name for w in node.manager.workers.values()}


def test_a_marked_pod_is_stopped_with_its_grace_then_removed_for_good(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = _registered_cluster()
    _pending(store, "web", nodeName=NODE_NAME, terminationGracePeriodSeconds=7)
    node = Node(store, monkeypatch)
    node.sync()
    node.run_tasks()
    graceful.delete_pod(store, "default", "web")  # `kubectl delete pod web`: only marked
    node.sync()
    worker = node.worker("web")
    assert worker.deletes == [7]
    node.sync()
    assert worker.deletes == [7]  # asked once
    assert store.find(api.PODS, "default", "web") is not None  # until the kubelet is done
    # The worker tore the pod down: its address is free and the pod deleted with grace 0.
    node.manager.gone(worker.pod)
    assert node.manager.ipam.in_use == set() and node.manager.workers == {}
    assert node.run_tasks() == ["remove web"]
    assert store.find(api.PODS, "default", "web") is None


def test_a_pod_deleted_outright_is_stopped_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    store = _registered_cluster()
    _pending(store, "web", nodeName=NODE_NAME)
    node = Node(store, monkeypatch)
    node.sync()
    graceful.delete_pod(store, "default", "web", grace=0)  # `kubectl delete --force`
    node.sync()
    assert node.worker("web").deletes == [0]


def test_a_marked_pod_it_never_ran_is_removed_and_a_successor_is_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = _registered_cluster()
    _pending(store, "db-0", nodeName=NODE_NAME)
    graceful.delete_pod(store, "default", "db-0")
    node = Node(store, monkeypatch)
    node.sync()
    assert node.manager.workers == {}
    assert node.run_tasks() == ["rm"]
    assert store.find(api.PODS, "default", "db-0") is None
    # A removal that comes late does not take the pod now holding the name.
    _pending(store, "db-0", nodeName=NODE_NAME)
    node.sync()
    worker = node.worker("db-0")
    stale = copy.copy(worker.pod)
    stale.uid = "the-old-one"
    node.manager.gone(stale)
    node.run_tasks()
    assert store.get(api.PODS, "default", "db-0")["metadata"]["uid"] == worker.pod.uid


def test_a_pod_it_cannot_run_is_reported_and_its_address_freed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = _registered_cluster()
    _pending(store, "odd", nodeName=NODE_NAME, volumes=[{"name": "h", "hostPath": {"path": "/"}}])
    node = Node(store, monkeypatch)
    node.sync()
    assert node.manager.workers == {} and node.manager.ipam.in_use == set()
    ((obj, reason, message),) = node.events
    assert (obj, reason) == ("pod/odd", "Failed")
    assert "volume h" in message


def test_each_status_is_written_once_and_not_after_the_pod_is_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = _registered_cluster()
    _pending(store, "web", nodeName=NODE_NAME)
    node = Node(store, monkeypatch)
    node.sync()
    asyncio.run(node.manager.write_statuses())
    written = store.get(api.PODS, "default", "web")["status"]
    assert written["phase"] == "Pending" and written["hostIP"] == "10.244.1.1"
    asyncio.run(node.manager.write_statuses())
    assert node.client.writes == ["/api/v1/namespaces/default/pods/web/status"]  # unchanged
    worker = node.worker("web")
    worker.pod.phase = "Running"
    asyncio.run(node.manager.write_statuses())
    assert store.get(api.PODS, "default", "web")["status"]["phase"] == "Running"
    assert len(node.client.writes) == 2
    # Deleted meanwhile (404): remembered, not retried on every pass.
    store.delete(api.PODS, "default", "web")
    worker.pod.phase = "Succeeded"
    asyncio.run(node.manager.write_statuses())
    asyncio.run(node.manager.write_statuses())
    assert len(node.client.writes) == 3


def test_a_resync_writes_again_what_the_node_lifecycle_controller_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = _registered_cluster()
    _pending(store, "web", nodeName=NODE_NAME)
    node = Node(store, monkeypatch)
    node.sync()
    pod = node.worker("web").pod
    pod.phase, pod.init_done = "Running", True
    pod.containers = {
        "c": ContainerState("c", state="running", reason="", started=True, ready=True)
    }
    asyncio.run(node.manager.write_statuses())
    assert _ready(store, "web") == "True"
    # The node went silent: the controller marked its pod not ready in the API.
    leases.renew(store, NODE_NAME, T0)
    nodelifecycle.check(store, T0 + datetime.timedelta(seconds=30))
    assert _ready(store, "web") == "False"
    # Back, the kubelet's cache still holds Ready=True as written: nothing is written...
    asyncio.run(node.manager.write_statuses())
    assert _ready(store, "web") == "False" and len(node.client.writes) == 1
    # ...until it forgets what it wrote.
    node.manager.resync()
    asyncio.run(node.manager.write_statuses())
    assert _ready(store, "web") == "True" and len(node.client.writes) == 2
    asyncio.run(node.manager.write_statuses())
    assert len(node.client.writes) == 2  # once, as before


def _ready(store: Store, name: str) -> str:
    conditions = store.get(api.PODS, "default", name)["status"]["conditions"]
    (ready,) = [c["status"] for c in conditions if c["type"] == "Ready"]
    return str(ready)
