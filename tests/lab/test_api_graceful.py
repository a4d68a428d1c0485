"""Graceful deletion of pods: lab/api/graceful.py, and the DELETE verb through it. Root-free.

A pod its node's kubelet runs (the Node's status.daemonEndpoints.kubeletEndpoint.Port
registered) is only marked; the kubelet's own DELETE with grace 0 removes it. A pod no
kubelet runs goes at once.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from lab.api import graceful, verbs
from lab.api.controllers import scheduler, statefulset
from lab.api.routes import Target
from lab.api.storage import Store
from lab.naming import NODE_NAME
from tests.lab import apicluster as api
from tests.lab.fakes import NODES, FakeKubelet


def _parse(stamp: str) -> datetime.datetime:
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)


def _with_kubelet(grace: int | None = None) -> Store:
    """A node whose kubelet has registered, and a pod `web` bound to it."""
    store = api.cluster()
    FakeKubelet(store)
    spec: dict[str, Any] = {} if grace is None else {"terminationGracePeriodSeconds": grace}
    api.pod(store, "web", "web", "10.244.1.5", **spec)
    return store


def test_kubelet_port_is_read_from_the_nodes_daemon_endpoints() -> None:
    store = api.cluster()
    assert graceful.kubelet_port(store.get(NODES, "", NODE_NAME)) == 0  # none registered yet
    assert graceful.kubelet_port(None) == 0
    FakeKubelet(store)
    assert graceful.kubelet_port(store.get(NODES, "", NODE_NAME)) == 10250


def test_a_pod_its_kubelet_runs_is_only_marked_then_removed_with_grace_zero() -> None:
    store = _with_kubelet()
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    marked = graceful.delete_pod(store, "default", "web")
    meta = marked["metadata"]
    assert meta["deletionGracePeriodSeconds"] == 30  # the API's default grace
    deadline = _parse(meta["deletionTimestamp"]) - before
    assert datetime.timedelta(seconds=30) <= deadline <= datetime.timedelta(seconds=32)
    assert store.get(api.PODS, "default", "web")["metadata"]["deletionTimestamp"]
    # The kubelet, once the containers are stopped:
    graceful.delete_pod(store, "default", "web", grace=0)
    assert store.find(api.PODS, "default", "web") is None


def test_the_pods_own_termination_grace_period_is_the_default() -> None:
    store = _with_kubelet(grace=5)
    marked = graceful.delete_pod(store, "default", "web")
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 5


def test_a_second_delete_may_shorten_the_grace_never_lengthen_it() -> None:
    store = _with_kubelet()
    first = graceful.delete_pod(store, "default", "web", grace=20)
    again = graceful.delete_pod(store, "default", "web", grace=60)
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert again["metadata"]["deletionGracePeriodSeconds"] == 20
    shorter = graceful.delete_pod(store, "default", "web", grace=3)
    assert shorter["metadata"]["deletionGracePeriodSeconds"] == 3
    assert _parse(shorter["metadata"]["deletionTimestamp"]) < _parse(
        first["metadata"]["deletionTimestamp"]
    )
    assert store.find(api.PODS, "default", "web") is not None


def test_a_negative_grace_is_zero_and_removes_at_once() -> None:
    store = _with_kubelet()
    graceful.delete_pod(store, "default", "web", grace=-1)
    assert store.find(api.PODS, "default", "web") is None


def test_without_a_kubelet_or_a_node_a_pod_goes_at_once() -> None:
    store = api.cluster()  # the node exists, but no kubelet registered a port
    api.pod(store, "web", "web", "10.244.1.5")
    assert graceful.delete_pod(store, "default", "web")["metadata"]["name"] == "web"
    assert store.find(api.PODS, "default", "web") is None
    store = _with_kubelet()
    api.create(store, "pods", {"metadata": {"name": "pending"}, "spec": {"containers": []}})
    graceful.delete_pod(store, "default", "pending")  # not scheduled: nobody to wait for
    assert store.find(api.PODS, "default", "pending") is None


def test_the_delete_verb_takes_the_grace_from_the_body_or_the_query() -> None:
    store = _with_kubelet()
    target = Target(api.PODS, "default", "web")
    _, marked, _ = verbs.delete(store, target, json.dumps({"gracePeriodSeconds": 7}).encode(), {})
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 7
    verbs.delete(store, target, b"", {"gracePeriodSeconds": "0"})
    assert store.find(api.PODS, "default", "web") is None


@pytest.mark.parametrize(
    ("options", "params", "grace"),
    [
        ({}, {}, None),
        ({"gracePeriodSeconds": 0}, {}, 0),
        ({}, {"gracePeriodSeconds": "12"}, 12),
        ({"gracePeriodSeconds": 4}, {"gracePeriodSeconds": "12"}, 4),
        ({}, {"gracePeriodSeconds": ""}, None),
    ],
)
def test_grace_of_delete_options(
    options: dict[str, object], params: dict[str, str], grace: int | None
) -> None:
    assert graceful.grace_of(options, params) == grace


def test_the_statefulset_controller_waits_for_the_terminating_pod_to_go() -> None:
    store = api.cluster()
    kubelet = FakeKubelet(store)
    container = {"name": "mysql", "image": "mysql:8"}
    api.stateful_set(store, "mysql", 1, "mysql-headless", containers=[container])
    api.settle(store, scheduler)
    assert kubelet.run_pods() == ["mysql-0"]
    old_uid = store.get(api.PODS, "default", "mysql-0")["metadata"]["uid"]
    graceful.delete_pod(store, "default", "mysql-0")
    api.settle(store, scheduler)
    # mysql-0 still holds its name (and its volume): no second mysql-0 beside it.
    (pod,) = api.listed(store, "pods")
    assert pod["metadata"]["uid"] == old_uid and pod["metadata"]["deletionTimestamp"]
    # The kubelet stopped it and removed it: now the controller makes the new one.
    graceful.delete_pod(store, "default", "mysql-0", grace=0)
    statefulset.reconcile(store)
    (pod,) = api.listed(store, "pods")
    assert pod["metadata"]["name"] == "mysql-0"
    assert pod["metadata"]["uid"] != old_uid and not pod["metadata"].get("deletionTimestamp")
