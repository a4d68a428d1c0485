"""The machine's real kubectl against an in-process API server with three nodes.

Root-free. The nodes' kubelets are stand-ins on the server's own loop (FakeKubelets
below): they renew each node's Lease, write a bound pod Running and Ready, and finish a
graceful deletion, which is all the API server is told by a kubelet. `kubectl get nodes`,
`cordon`, `drain` (evictions honouring the app's PodDisruptionBudgets) and `uncordon`,
the app's pods spread over the nodes, and a node whose kubelet falls silent.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.api import graceful, leases
from lab.api.resources import lookup
from lab.api.server import InThread
from lab.api.storage import Obj, Store
from tests.conftest import missing
from tests.k8s.k8s_manifests import K8S_DIR
from tests.lab.test_api_kubectl import KUBECTL, NS, Kubectl, _wait_for, kubectl_for

PODS = lookup("", "v1", "pods")
NODES = lookup("", "v1", "nodes")
assert PODS and NODES
NODE_NAMES = ("lab-node-1", "lab-node-2", "lab-node-3")
KUBELET_PORT = 10250
BACKEND = "app.kubernetes.io/name=backend"


class FakeKubelets:
    """Every node's kubelet, as far as the API server sees one; a beat every 0.3 s."""

    def __init__(self, thread: InThread) -> None:
        self.thread = thread
        self.silent: set[str] = set()  # nodes whose kubelet has stopped
        self.starting = True  # whether new pods are started (and become Ready)
        self._stop = threading.Event()
        self._beats = threading.Thread(target=self._run, name="fake-kubelets", daemon=True)

    @property
    def store(self) -> Store:
        assert self.thread.running
        return self.thread.running.store

    def start(self) -> None:
        self.thread.call(self._register, self.store)
        self.thread.call(self._beat, self.store)
        self._beats.start()

    def stop(self) -> None:
        self._stop.set()
        self._beats.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            self.thread.call(self._beat, self.store)

    @staticmethod
    def _register(store: Store) -> None:
        for name in NODE_NAMES:
            node = store.get(NODES, "", name)
            node["status"]["daemonEndpoints"] = {"kubeletEndpoint": {"Port": KUBELET_PORT}}
            store.update(NODES, node, "status")

    def _beat(self, store: Store) -> None:
        for name in NODE_NAMES:
            if name not in self.silent:
                leases.renew(store, name)
        for pod in store.list(PODS)[0]:
            node = pod["spec"].get("nodeName")
            if not node or node in self.silent:
                continue
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                graceful.delete_pod(store, meta["namespace"], meta["name"], grace=0)
            elif self.starting and pod["status"].get("phase") != "Running":
                self._run_pod(store, pod)

    @staticmethod
    def _run_pod(store: Store, pod: Obj) -> None:
        index = NODE_NAMES.index(pod["spec"]["nodeName"]) + 1
        # 2..251: a valid last octet (uid ff would give .257, which kube-proxy's view refuses).
        number = int(pod["metadata"]["uid"][:2], 16) % 250 + 2
        others = [
            c
            for c in pod["status"].get("conditions") or []
            if c["type"] not in ("Ready", "ContainersReady")
        ]
        pod["status"].update(
            phase="Running",
            podIP=f"10.244.{index}.{number}",
            conditions=[
                *others,
                {"type": "ContainersReady", "status": "True"},
                {"type": "Ready", "status": "True"},
            ],
        )
        store.update(PODS, pod, "status")


def three_nodes(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[InThread]:
    """The in-process API server with three nodes, for a module's `server` fixture."""
    if not (Path(KUBECTL).exists() and shutil.which("kubectl")):
        missing(
            "kubectl is not installed at /usr/bin/kubectl: "
            "these tests drive the lab's API server with it"
        )
    thread = InThread(tmp_path_factory.mktemp(name), nodes=3)
    thread.start()
    yield thread
    thread.stop()


def running_kubelets(server: InThread) -> Iterator[FakeKubelets]:
    fakes = FakeKubelets(server)
    fakes.start()
    yield fakes
    fakes.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InThread]:
    yield from three_nodes(tmp_path_factory, "apiserver3")


@pytest.fixture(scope="module")
def kubelets(server: InThread) -> Iterator[FakeKubelets]:
    yield from running_kubelets(server)


@pytest.fixture(scope="module")
def kubectl(server: InThread, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    assert server.running
    return kubectl_for(server.running, tmp_path_factory.mktemp("kubectl3-home"))


def _pods(kubectl: Kubectl, selector: str = "") -> list[Obj]:
    args = ["get", "pods", "-n", NS, "-o", "json"] + (["-l", selector] if selector else [])
    return json.loads(kubectl.run(*args).stdout)["items"]


def _all_running(kubectl: Kubectl) -> bool:
    pods = _pods(kubectl)
    return len(pods) >= 7 and all(
        p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
        for p in pods
    )


@pytest.fixture(scope="module")
def applied(kubectl: Kubectl, kubelets: FakeKubelets) -> None:
    kubectl.run("apply", "-k", str(K8S_DIR))
    _wait_for(lambda: _all_running(kubectl), 30)


def _node_rows(kubectl: Kubectl, *args: str) -> dict[str, list[str]]:
    lines = kubectl.run("get", "nodes", *args).stdout.splitlines()
    return {line.split()[0]: line.split() for line in lines[1:]}


def _status(kubectl: Kubectl, node: str) -> str:
    return _node_rows(kubectl)[node][1]


def test_get_nodes_wide_prints_the_three_nodes(kubectl: Kubectl, kubelets: FakeKubelets) -> None:
    lines = kubectl.run("get", "nodes", "-o", "wide").stdout.splitlines()
    assert lines[0].split() == [
        "NAME",
        "STATUS",
        "ROLES",
        "AGE",
        "VERSION",
        "INTERNAL-IP",
        "EXTERNAL-IP",
        "OS-IMAGE",
        "KERNEL-VERSION",
        "CONTAINER-RUNTIME",
    ]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert sorted(rows) == list(NODE_NAMES)
    assert [rows[n][1:3] for n in NODE_NAMES] == [
        ["Ready", "control-plane"],
        ["Ready", "<none>"],
        ["Ready", "<none>"],
    ]
    assert [rows[n][4:7] for n in NODE_NAMES] == [
        ["v1.33.0", f"10.250.0.{i + 1}", "<none>"] for i in (1, 2, 3)
    ]
    assert all(rows[n][-1] == "clusterip-lab://1" for n in NODE_NAMES)
    zones = kubectl.run("get", "nodes", "-L", "topology.kubernetes.io/zone").stdout
    assert [line.split()[-1] for line in zones.splitlines()[1:]] == [
        "lab-zone-a",
        "lab-zone-b",
        "lab-zone-a",
    ]


def test_each_node_has_its_lease(kubectl: Kubectl, kubelets: FakeKubelets) -> None:
    lines = kubectl.run("get", "leases", "-n", "kube-node-lease").stdout.splitlines()
    assert lines[0].split() == ["NAME", "HOLDER", "AGE"]
    assert [line.split()[:2] for line in lines[1:]] == [[n, n] for n in NODE_NAMES]
    lease = json.loads(
        kubectl.run("get", "lease", "lab-node-2", "-n", "kube-node-lease", "-o", "json").stdout
    )
    assert lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["spec"]["renewTime"].endswith("Z")


def test_the_backend_spreads_one_pod_per_node(kubectl: Kubectl, applied: None) -> None:
    wide = kubectl.run("get", "pods", "-n", NS, "-o", "wide", "-l", BACKEND).stdout.splitlines()
    assert wide[0].split()[6] == "NODE"
    assert sorted(line.split()[6] for line in wide[1:]) == list(NODE_NAMES)
    frontend = _pods(kubectl, "app.kubernetes.io/name=frontend")
    assert len({p["spec"]["nodeName"] for p in frontend}) == 2


def test_cordon_keeps_new_pods_off_and_uncordon_lets_them_back(
    kubectl: Kubectl, applied: None
) -> None:
    kubectl.run("cordon", "lab-node-2")
    assert _status(kubectl, "lab-node-2") == "Ready,SchedulingDisabled"
    kubectl.run("scale", "deployment/backend", "-n", NS, "--replicas=6")
    _wait_for(lambda: len(_pods(kubectl, BACKEND)) == 6 and _all_running(kubectl), 30)
    placed = Counter(p["spec"]["nodeName"] for p in _pods(kubectl, BACKEND))
    assert placed == Counter({"lab-node-1": 2, "lab-node-2": 1, "lab-node-3": 3}) or placed == (
        Counter({"lab-node-1": 3, "lab-node-2": 1, "lab-node-3": 2})
    )  # node 2 keeps only the pod from before the cordon
    kubectl.run("uncordon", "lab-node-2")
    assert _status(kubectl, "lab-node-2") == "Ready"
    kubectl.run("scale", "deployment/backend", "-n", NS, "--replicas=3")
    _wait_for(lambda: len(_pods(kubectl, BACKEND)) == 3, 30)


def _drain(kubectl: Kubectl, node: str, timeout: str) -> tuple[int, str]:
    done = kubectl.run(
        "drain",
        node,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        f"--timeout={timeout}",
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_drain_evicts_through_the_budgets(
    kubectl: Kubectl, applied: None, kubelets: FakeKubelets
) -> None:
    kubelets.starting = False  # replacements stay unready: the budgets have no slack
    try:
        code, out = _drain(kubectl, "lab-node-2", "60s")
        assert code == 0, out
        assert "node/lab-node-2 drained" in out
        assert not [p for p in _pods(kubectl) if p["spec"].get("nodeName") == "lab-node-2"]
        # The backend's budget (maxUnavailable 1) is spent on node 2's pod, whose
        # replacement is not ready: node 3's backend pod may not go.
        code, out = _drain(kubectl, "lab-node-3", "6s")
        assert code != 0
        assert "Cannot evict pod as it would violate the pod's disruption budget." in out, out
        assert [p for p in _pods(kubectl, BACKEND) if p["spec"].get("nodeName") == "lab-node-3"]
    finally:
        kubelets.starting = True
    _wait_for(lambda: _all_running(kubectl), 30)
    code, out = _drain(kubectl, "lab-node-3", "60s")
    assert code == 0, out
    assert {p["spec"]["nodeName"] for p in _pods(kubectl)} == {"lab-node-1"}
    rows = _node_rows(kubectl)
    assert [rows[n][1] for n in NODE_NAMES] == [
        "Ready",
        "Ready,SchedulingDisabled",
        "Ready,SchedulingDisabled",
    ]
    for node in ("lab-node-2", "lab-node-3"):
        kubectl.run("uncordon", node)
    assert _status(kubectl, "lab-node-3") == "Ready"


def _backend_ready_on(kubectl: Kubectl, node: str) -> list[str]:
    return [
        c["status"]
        for p in _pods(kubectl, BACKEND)
        if p["spec"].get("nodeName") == node
        for c in p["status"].get("conditions") or []
        if c["type"] == "Ready"
    ]


def _replaced_elsewhere(kubectl: Kubectl, node: str, replicas: int) -> bool:
    live = [
        p
        for p in _pods(kubectl, BACKEND)
        if not p["metadata"].get("deletionTimestamp") and p["status"].get("phase") == "Running"
    ]
    return len(live) == replicas and all(p["spec"]["nodeName"] != node for p in live)


def test_a_silent_node_goes_not_ready_its_pods_are_replaced_then_it_comes_back(
    kubectl: Kubectl, applied: None, kubelets: FakeKubelets
) -> None:
    kubectl.run("scale", "deployment/backend", "-n", NS, "--replicas=6")
    _wait_for(lambda: len(_pods(kubectl, BACKEND)) == 6 and _all_running(kubectl), 30)
    assert _backend_ready_on(kubectl, "lab-node-3")  # the spread put some there
    kubelets.silent.add("lab-node-3")
    try:
        _wait_for(lambda: _status(kubectl, "lab-node-3") == "NotReady", 30)
        node = json.loads(kubectl.run("get", "node", "lab-node-3", "-o", "json").stdout)
        assert {(t["key"], t["effect"]) for t in node["spec"]["taints"]} == {
            ("node.kubernetes.io/unreachable", "NoSchedule"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
        }
        (ready,) = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert (ready["status"], ready["message"]) == (
            "Unknown",
            "Kubelet stopped posting node status.",
        )
        assert _status(kubectl, "lab-node-2") == "Ready"
        assert set(_backend_ready_on(kubectl, "lab-node-3")) == {"False"}
        # After the default tolerationSeconds the pods are evicted (Terminating: their
        # kubelet is silent) and the ReplicaSet runs their replacements elsewhere.
        _wait_for(lambda: _replaced_elsewhere(kubectl, "lab-node-3", 6), 60)
    finally:
        kubelets.silent.discard("lab-node-3")
    _wait_for(lambda: _status(kubectl, "lab-node-3") == "Ready", 30)
    node = json.loads(kubectl.run("get", "node", "lab-node-3", "-o", "json").stdout)
    assert "taints" not in node["spec"]
    # Its kubelet back, it finishes the evicted pods.
    _wait_for(lambda: not _backend_ready_on(kubectl, "lab-node-3"), 30)
    kubectl.run("scale", "deployment/backend", "-n", NS, "--replicas=3")
    _wait_for(lambda: len(_pods(kubectl, BACKEND)) == 3, 30)
