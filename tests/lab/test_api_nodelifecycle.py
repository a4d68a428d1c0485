"""The node-lifecycle controller and the nodes' Leases, root-free, on the test's own clock.

A Store with three nodes and the app's backend-like pods; `nodelifecycle.check(store, at)`
is one pass of the controller at time `at`, so no test sleeps.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from lab.api import admission, bootstrap, leases
from lab.api.controllers import endpointslice, nodelifecycle, replicaset, scheduler
from lab.api.errors import ApiError
from lab.api.resources import lookup
from lab.api.storage import Obj, Store
from tests.lab import apicluster as api

PODS = lookup("", "v1", "pods")
NODES = lookup("", "v1", "nodes")
SLICES = lookup("discovery.k8s.io", "v1", "endpointslices")
assert PODS and NODES and SLICES
T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
UNREACHABLE = "node.kubernetes.io/unreachable"


def _seconds(n: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=n)


def _three() -> Store:
    store = Store()
    bootstrap.populate(store, 6443, nodes=3)
    return store


def _ready(obj: Obj) -> Obj:
    (condition,) = [c for c in obj["status"]["conditions"] if c["type"] == "Ready"]
    return condition


def _node(store: Store, name: str) -> Obj:
    return store.get(NODES, "", name)


def _run_pods(store: Store) -> None:
    """What a kubelet on every node would write: each bound pod running and ready."""
    for pod in store.list(PODS)[0]:
        if not pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
            continue
        if pod["status"].get("phase") == "Running":
            continue
        index = int(pod["spec"]["nodeName"].rsplit("-", 1)[1])
        pod["status"].update(
            phase="Running",
            podIP=f"10.244.{index}.{10 + len(store.list(PODS)[0])}",
            conditions=[
                *pod["status"].get("conditions", []),
                {"type": "Ready", "status": "True"},
            ],
        )
        store.update(PODS, pod, "status")


def _web(store: Store, replicas: int = 3) -> None:
    api.service(store, "web", [{"port": 80, "targetPort": 8080}], selector="web")
    rs: dict[str, Any] = {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:1"}]},
            },
        },
    }
    api.create(store, "replicasets", rs, "apps")
    api.settle(store, scheduler)
    _run_pods(store)
    api.settle(store, scheduler)


def _ready_endpoints(store: Store) -> dict[str, bool]:
    (slice_,) = [
        s
        for s in store.list(SLICES, "default")[0]
        if s["metadata"]["labels"].get("kubernetes.io/service-name") == "web"
    ]
    return {e["nodeName"]: e["conditions"]["ready"] for e in slice_.get("endpoints") or []}


def _renew_all(store: Store, at: datetime.datetime, *skip: str) -> None:
    for node in store.list(NODES)[0]:
        if node["metadata"]["name"] not in skip:
            leases.renew(store, node["metadata"]["name"], at)


# -- leases ------------------------------------------------------------------------------
def test_renew_creates_the_nodes_lease_then_moves_its_renew_time() -> None:
    store = _three()
    first = leases.renew(store, "lab-node-2", T0)
    assert first["metadata"]["namespace"] == "kube-node-lease"
    assert first["spec"]["holderIdentity"] == "lab-node-2"
    assert first["spec"]["leaseDurationSeconds"] == 40
    assert first["metadata"]["ownerReferences"][0]["kind"] == "Node"
    second = leases.renew(store, "lab-node-2", _seconds(2.5))
    assert second["metadata"]["uid"] == first["metadata"]["uid"]
    assert leases.renewed_at(second) == _seconds(2.5)
    assert second["spec"]["renewTime"] == "2026-01-01T12:00:02.500000Z"


def test_a_lease_is_checked_against_its_schema_strictly() -> None:
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "x", "namespace": leases.NAMESPACE},
        "spec": {"holderIdentity": "x", "renewSeconds": 2},
    }
    with pytest.raises(ApiError) as refused:
        admission.check_fields(leases.LEASES, lease, "Strict")
    assert 'unknown field "spec.renewSeconds"' in refused.value.message
    del lease["spec"]["renewSeconds"]
    assert admission.check_fields(leases.LEASES, lease, "Strict") == (lease, [])


def test_admission_adds_the_default_noexecute_tolerations_once() -> None:
    store = _three()
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {
            "containers": [{"name": "c", "image": "c:1"}],
            "tolerations": [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}],
        },
    }
    spec = admission.default(store, PODS, body)["spec"]
    assert spec["tolerations"] == [
        {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"},
        {
            "key": "node.kubernetes.io/not-ready",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": admission.DEFAULT_TOLERATION_SECONDS,
        },
    ]


# -- the controller ----------------------------------------------------------------------
def test_nodes_without_a_lease_are_left_alone() -> None:
    store = _three()
    _web(store)
    revision = store.revision
    nodelifecycle.check(store, _seconds(3600))
    assert store.revision == revision
    assert all(_ready(n)["status"] == "True" for n in store.list(NODES)[0])


def test_a_node_that_stops_renewing_goes_unknown_tainted_and_its_pods_not_ready() -> None:
    store = _three()
    _web(store)
    _renew_all(store, T0)
    nodelifecycle.check(store, _seconds(7))
    assert "taints" not in _node(store, "lab-node-2")["spec"]
    _renew_all(store, _seconds(7), "lab-node-2")
    nodelifecycle.check(store, _seconds(9))  # node 2: 9 s silent, past the 8 s grace
    node = _node(store, "lab-node-2")
    ready = _ready(node)
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "Unknown",
        "NodeStatusUnknown",
        "Kubelet stopped posting node status.",
    )
    assert [(t["key"], t["effect"]) for t in node["spec"]["taints"]] == [
        (UNREACHABLE, "NoSchedule"),
        (UNREACHABLE, "NoExecute"),
    ]
    assert all(
        _ready(n)["status"] == "True"
        for n in store.list(NODES)[0]
        if n["metadata"]["name"] != "lab-node-2"
    )
    endpointslice.reconcile(store)
    assert _ready_endpoints(store) == {"lab-node-1": True, "lab-node-2": False, "lab-node-3": True}


def test_its_pods_are_evicted_after_toleration_seconds_and_replaced_elsewhere() -> None:
    store = _three()
    _web(store)
    _renew_all(store, T0)
    _renew_all(store, _seconds(5), "lab-node-2")
    nodelifecycle.check(store, _seconds(10))  # tainted at 10 s
    on_two = [p for p in store.list(PODS)[0] if p["spec"]["nodeName"] == "lab-node-2"]
    assert len(on_two) == 1
    later = _seconds(10 + admission.DEFAULT_TOLERATION_SECONDS - 1)
    _renew_all(store, later, "lab-node-2")  # nodes 1 and 3 stay alive
    nodelifecycle.check(store, later)
    assert store.find(PODS, "default", on_two[0]["metadata"]["name"]) is not None
    nodelifecycle.check(store, _seconds(10 + admission.DEFAULT_TOLERATION_SECONDS))
    # No kubelet is registered on the node: the deletion is immediate.
    assert store.find(PODS, "default", on_two[0]["metadata"]["name"]) is None
    api.settle(store, replicaset, scheduler)
    nodes = sorted(p["spec"]["nodeName"] for p in store.list(PODS, "default")[0])
    assert len(nodes) == 3 and "lab-node-2" not in nodes


def test_a_pod_that_does_not_tolerate_unreachable_goes_at_once_one_that_always_does_stays() -> None:
    store = _three()
    for name, tolerations in (
        ("intolerant", []),
        ("forever", [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]),
    ):
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "containers": [{"name": "c", "image": "c:1"}],
                "nodeName": "lab-node-3",
                "tolerations": tolerations,
            },
        }
        pod = admission.default(store, PODS, body)
        # As if created without the admission default: no toleration for unreachable.
        pod["spec"]["tolerations"] = tolerations
        store.create(PODS, pod)
    _renew_all(store, T0)
    _renew_all(store, _seconds(5), "lab-node-3")
    nodelifecycle.check(store, _seconds(20))
    assert store.find(PODS, "default", "intolerant") is None
    nodelifecycle.check(store, _seconds(20000))
    assert store.find(PODS, "default", "forever") is not None


def test_a_renewed_lease_makes_the_node_ready_and_lifts_the_taints() -> None:
    store = _three()
    _renew_all(store, T0)
    nodelifecycle.check(store, _seconds(30))
    assert all(_ready(n)["status"] == "Unknown" for n in store.list(NODES)[0])
    leases.renew(store, "lab-node-1", _seconds(31))
    nodelifecycle.check(store, _seconds(32))
    node = _node(store, "lab-node-1")
    assert (_ready(node)["status"], _ready(node)["reason"]) == ("True", "KubeletReady")
    assert "taints" not in node["spec"]
    assert _ready(_node(store, "lab-node-2"))["status"] == "Unknown"


def test_a_cordon_survives_the_taints_coming_and_going() -> None:
    store = _three()
    node = _node(store, "lab-node-1")
    node["spec"]["unschedulable"] = True
    node["spec"]["taints"] = [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]
    store.update(NODES, node)
    _renew_all(store, T0)
    nodelifecycle.check(store, _seconds(30))
    leases.renew(store, "lab-node-1", _seconds(31))
    nodelifecycle.check(store, _seconds(32))
    spec = _node(store, "lab-node-1")["spec"]
    assert spec["unschedulable"] is True
    assert spec["taints"] == [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]


def test_a_noexecute_taint_written_by_hand_gets_its_time_and_evicts_intolerant_pods() -> None:
    store = _three()
    _web(store)
    node = _node(store, "lab-node-1")
    node["spec"]["taints"] = [
        {"key": "maintenance", "effect": "NoExecute"},
        {"key": "kept", "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"},
    ]
    written = store.update(NODES, admission.default(store, NODES, node, node))
    added = [t.get("timeAdded") for t in written["spec"]["taints"]]
    assert added[0] and added[0].endswith("Z") and added[1] == "2026-01-01T00:00:00Z"
    before = {p["metadata"]["name"] for p in store.list(PODS)[0]}
    nodelifecycle.check(store, datetime.datetime.now(datetime.UTC))
    after = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in store.list(PODS)[0]}
    gone = before - set(after)
    assert len(gone) == 1  # the pod on node 1 tolerates no `maintenance` taint
    assert "lab-node-1" not in after.values()
