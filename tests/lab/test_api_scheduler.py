"""The API server's nodes and its scheduler with three nodes: filters, spread, the reasons.

Root-free: a Store with bootstrap's three nodes, pods created through admission, the
controllers run by hand until they settle.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from typing import Any

import pytest
import yaml

from lab.api import admission, bootstrap
from lab.api.controllers import scheduler
from lab.api.resources import lookup
from lab.api.storage import Obj, Store
from lab.naming import NODE_GATEWAY, NODE_NAME, NODE_POD_CIDR
from tests.conftest import missing
from tests.k8s.k8s_manifests import REPO
from tests.lab import apicluster as api

PODS = lookup("", "v1", "pods")
NODES = lookup("", "v1", "nodes")
EVENTS = lookup("", "v1", "events")
assert PODS and NODES and EVENTS
ZONE = "topology.kubernetes.io/zone"


def _three() -> Store:
    store = Store()
    bootstrap.populate(store, 6443, nodes=3)
    return store


def _pod(store: Store, name: str, labels: dict[str, str] | None = None, **spec: Any) -> Obj:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels or {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "web:1"}], **spec},
    }
    return store.create(PODS, admission.default(store, PODS, body))


def _node_of(store: Store, name: str) -> str | None:
    return store.get(PODS, "default", name)["spec"].get("nodeName")


def _edit_node(store: Store, name: str, **spec: Any) -> None:
    node = store.get(NODES, "", name)
    node["spec"].update(spec)
    store.update(NODES, node)


def _failed_scheduling(store: Store, pod: str) -> list[str]:
    return [
        e["message"]
        for e in store.list(EVENTS, "default")[0]
        if e["reason"] == "FailedScheduling" and e["involvedObject"]["name"] == pod
    ]


# -- nodes -------------------------------------------------------------------------------
def test_three_nodes_each_with_its_slice_of_the_pod_network_over_two_zones() -> None:
    nodes = {n["metadata"]["name"]: n for n in _three().list(NODES)[0]}
    assert sorted(nodes) == ["lab-node-1", "lab-node-2", "lab-node-3"]
    assert [nodes[n]["spec"]["podCIDR"] for n in sorted(nodes)] == [
        "10.244.1.0/24",
        "10.244.2.0/24",
        "10.244.3.0/24",
    ]
    internal = {
        name: [a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP"]
        for name, n in nodes.items()
    }
    assert internal == {
        # Of several nodes, each one's address on the nodes' network (lab/naming.py).
        "lab-node-1": ["10.250.0.2"],
        "lab-node-2": ["10.250.0.3"],
        "lab-node-3": ["10.250.0.4"],
    }
    zones = {name: n["metadata"]["labels"][ZONE] for name, n in nodes.items()}
    assert zones == {
        "lab-node-1": "lab-zone-a",
        "lab-node-2": "lab-zone-b",
        "lab-node-3": "lab-zone-a",
    }
    assert all(n["metadata"]["labels"]["kubernetes.io/hostname"] == k for k, n in nodes.items())
    roles = [
        k
        for k, n in nodes.items()
        if "node-role.kubernetes.io/control-plane" in n["metadata"]["labels"]
    ]
    assert roles == ["lab-node-1"]


def test_one_node_by_default_is_the_single_node_labs_node() -> None:
    store = Store()
    bootstrap.populate(store, 6443)
    (node,) = store.list(NODES)[0]
    assert node["metadata"]["name"] == NODE_NAME
    assert node["spec"]["podCIDR"] == str(NODE_POD_CIDR)
    assert {"type": "InternalIP", "address": str(NODE_GATEWAY)} in node["status"]["addresses"]


# -- filters -----------------------------------------------------------------------------
def test_pods_go_to_the_node_with_fewest_pods_then_by_name() -> None:
    store = _three()
    for i in range(4):
        _pod(store, f"p{i}")
    scheduler.reconcile(store)
    assert [_node_of(store, f"p{i}") for i in range(4)] == [
        "lab-node-1",
        "lab-node-2",
        "lab-node-3",
        "lab-node-1",
    ]


def test_a_cordoned_node_gets_no_new_pod_unless_the_pod_tolerates_it() -> None:
    store = _three()
    _edit_node(store, "lab-node-1", unschedulable=True)
    _pod(store, "plain")
    tolerant = {"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}
    _pod(
        store,
        "tolerant",
        nodeSelector={"kubernetes.io/hostname": "lab-node-1"},
        tolerations=[tolerant],
    )
    scheduler.reconcile(store)
    assert _node_of(store, "plain") == "lab-node-2"
    assert _node_of(store, "tolerant") == "lab-node-1"


def test_a_taint_keeps_pods_off_unless_tolerated() -> None:
    store = _three()
    taint = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    for name in ("lab-node-1", "lab-node-2"):
        _edit_node(store, name, taints=[taint])
    _pod(store, "plain")
    _pod(
        store,
        "db",
        nodeSelector={ZONE: "lab-zone-b"},
        tolerations=[{"key": "dedicated", "operator": "Equal", "value": "db"}],
    )
    _pod(
        store,
        "wrong-value",
        nodeSelector={ZONE: "lab-zone-b"},
        tolerations=[{"key": "dedicated", "operator": "Equal", "value": "web"}],
    )
    scheduler.reconcile(store)
    assert _node_of(store, "plain") == "lab-node-3"
    assert _node_of(store, "db") == "lab-node-2"
    assert _node_of(store, "wrong-value") is None


def test_required_node_affinity_is_honoured() -> None:
    store = _three()
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": ZONE, "operator": "In", "values": ["lab-zone-a"]},
                            {
                                "key": "kubernetes.io/hostname",
                                "operator": "NotIn",
                                "values": ["lab-node-1"],
                            },
                        ]
                    }
                ]
            }
        }
    }
    _pod(store, "picky", affinity=affinity)
    scheduler.reconcile(store)
    assert _node_of(store, "picky") == "lab-node-3"


def test_a_pod_no_node_fits_stays_pending_with_kube_schedulers_reasons() -> None:
    store = _three()
    _edit_node(store, "lab-node-1", unschedulable=True)
    _edit_node(
        store,
        "lab-node-2",
        taints=[{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}],
    )
    _pod(store, "stuck", nodeSelector={"kubernetes.io/hostname": "lab-node-2"})
    scheduler.reconcile(store)
    pod = store.get(PODS, "default", "stuck")
    assert "nodeName" not in pod["spec"]
    (condition,) = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
    expected = (
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, "
        "1 node(s) were unschedulable. preemption: 0/3 nodes are available: "
        "3 Preemption is not helpful for scheduling."
    )
    assert (condition["status"], condition["reason"], condition["message"]) == (
        "False",
        "Unschedulable",
        expected,
    )
    scheduler.reconcile(store)
    assert _failed_scheduling(store, "stuck") == [expected]  # said once, not every pass
    _edit_node(store, "lab-node-2", taints=[])
    scheduler.reconcile(store)
    assert _node_of(store, "stuck") == "lab-node-2"


def test_a_not_ready_node_gets_no_pod() -> None:
    store = _three()
    for name in ("lab-node-1", "lab-node-3"):
        node = store.get(NODES, "", name)
        node["status"]["conditions"][0]["status"] = "False"
        store.update(NODES, node, "status")
    _pod(store, "a")
    _pod(store, "b")
    scheduler.reconcile(store)
    assert (_node_of(store, "a"), _node_of(store, "b")) == ("lab-node-2", "lab-node-2")


# -- topology spread ---------------------------------------------------------------------
def _spread(key: str, when: str, skew: int = 1) -> dict[str, Any]:
    return {
        "maxSkew": skew,
        "topologyKey": key,
        "whenUnsatisfiable": when,
        "labelSelector": {"matchLabels": {"app": "web"}},
    }


def test_do_not_schedule_zone_spread_refuses_the_crowded_zone() -> None:
    store = _three()
    constraint = [_spread(ZONE, "DoNotSchedule")]
    # Two in zone a by hand: a third must go to zone b, though node 2 has more pods.
    for name, node in (("a1", "lab-node-1"), ("a2", "lab-node-3")):
        _pod(store, name, nodeName=node)
    for i in range(3):
        _pod(store, f"other{i}", {"app": "other"}, nodeName="lab-node-2")
    _pod(store, "third", topologySpreadConstraints=constraint)
    scheduler.reconcile(store)
    assert _node_of(store, "third") == "lab-node-2"
    # Zone a 2, zone b 1: a fourth in zone a would make the skew 2, so zone b again.
    _pod(store, "fourth", topologySpreadConstraints=constraint)
    scheduler.reconcile(store)
    assert _node_of(store, "fourth") == "lab-node-2"
    # 2 and 2: a fifth may go to zone a; with zone b cordoned a sixth has nowhere to go.
    _edit_node(store, "lab-node-2", unschedulable=True)
    _pod(store, "fifth", topologySpreadConstraints=constraint)
    _pod(store, "sixth", topologySpreadConstraints=constraint)
    scheduler.reconcile(store)
    assert _node_of(store, "fifth") in ("lab-node-1", "lab-node-3")
    assert _node_of(store, "sixth") is None
    (message,) = _failed_scheduling(store, "sixth")
    assert "2 node(s) didn't match pod topology spread constraints" in message
    assert "1 node(s) were unschedulable" in message


def test_schedule_anyway_spread_prefers_the_emptier_domain_over_fewest_pods() -> None:
    store = _three()
    _pod(store, "a1", nodeName="lab-node-1")
    for i in range(2):
        _pod(store, f"other{i}", {"app": "other"}, nodeName="lab-node-3")
    # By pod count node 2 (0 pods) wins anyway; put 3 others there so the spread decides.
    for i in range(3):
        _pod(store, f"more{i}", {"app": "other"}, nodeName="lab-node-2")
    _pod(
        store,
        "next",
        topologySpreadConstraints=[_spread("kubernetes.io/hostname", "ScheduleAnyway")],
    )
    scheduler.reconcile(store)
    # Nodes 2 and 3 have no web pod; node 3 has fewer pods.
    assert _node_of(store, "next") == "lab-node-3"


@pytest.fixture(scope="module")
def rendered() -> str:
    if shutil.which("kubectl") is None:
        missing("kubectl is not installed: the lab renders k8s/ with `kubectl kustomize`")
    return subprocess.run(
        ["kubectl", "kustomize", str(REPO / "k8s")], capture_output=True, text=True, check=True
    ).stdout


def test_the_apps_backend_and_frontend_spread_over_the_three_nodes(rendered: str) -> None:
    store = _three()
    api.apply(store, [d for d in yaml.safe_load_all(rendered) if d])
    api.settle(store, scheduler)
    pods = store.list(PODS, "clusterip-demo")[0]

    def placed(app: str) -> Counter[str]:
        return Counter(
            p["spec"].get("nodeName")
            for p in pods
            if p["metadata"]["labels"].get("app.kubernetes.io/name") == app
        )

    # backend: 3 replicas, hostname and zone spread (ScheduleAnyway): one per node.
    assert placed("backend") == Counter({"lab-node-1": 1, "lab-node-2": 1, "lab-node-3": 1})
    # frontend: 2 replicas, hostname spread: on two different nodes.
    frontend = placed("frontend")
    assert sum(frontend.values()) == 2 and len(frontend) == 2 and None not in frontend
