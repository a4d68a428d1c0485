"""The lab's API server without HTTP: storage, watches, selectors, patches, admission,
cascading deletion, controllers, Table columns, kubeconfig files. Root-free."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.api import admission, bootstrap, garbage, kubeconfig, patch, printers
from lab.api.controllers import (
    deployment,
    disruption,
    endpointslice,
    replicaset,
    scheduler,
    serviceaccount,
    statefulset,
)
from lab.api.errors import ApiError
from lab.api.resources import by_kind, lookup
from lab.api.selectors import field_matcher, label_matcher
from lab.api.storage import Obj, Store

PODS = lookup("", "v1", "pods")
SERVICES = lookup("", "v1", "services")
CONFIGMAPS = lookup("", "v1", "configmaps")
DEPLOYMENTS = lookup("apps", "v1", "deployments")
REPLICASETS = lookup("apps", "v1", "replicasets")
SLICES = lookup("discovery.k8s.io", "v1", "endpointslices")
assert PODS and SERVICES and CONFIGMAPS and DEPLOYMENTS and REPLICASETS and SLICES


def _cm(name: str, data: dict[str, str] | None = None, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "data": data or {},
    }


def _deployment(name: str = "web", replicas: int = 2, image: str = "web:1") -> dict[str, Any]:
    labels = {"app": name}
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }
    return admission.default(Store(), DEPLOYMENTS, body)


def _settle(store: Store) -> None:
    """Run the controllers until nothing changes, as their watch loops would."""
    for _ in range(10):
        before = store.revision
        for controller in (
            deployment,
            replicaset,
            statefulset,
            endpointslice,
            serviceaccount,
            disruption,
        ):
            controller.reconcile(store)
        if store.revision == before:
            return
    raise AssertionError("the controllers did not settle")


# -- storage -----------------------------------------------------------------------------
def test_create_sets_the_system_fields() -> None:
    store = Store()
    created = store.create(CONFIGMAPS, _cm("a"))
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert meta["resourceVersion"] == str(store.revision)
    assert (created["apiVersion"], created["kind"]) == ("v1", "ConfigMap")
    with pytest.raises(ApiError) as again:
        store.create(CONFIGMAPS, _cm("a"))
    assert again.value.code == 409 and again.value.reason == "AlreadyExists"


def test_update_with_a_stale_resource_version_is_a_409_conflict() -> None:
    store = Store()
    first = store.create(CONFIGMAPS, _cm("a", {"k": "1"}))
    second = dict(first, data={"k": "2"})
    store.update(CONFIGMAPS, second)
    stale = dict(first, data={"k": "3"})
    with pytest.raises(ApiError) as error:
        store.update(CONFIGMAPS, stale)
    assert error.value.code == 409 and error.value.reason == "Conflict"
    assert "the object has been modified" in error.value.message
    assert store.get(CONFIGMAPS, "default", "a")["data"] == {"k": "2"}


def test_generation_follows_the_spec_only() -> None:
    store = Store()
    created = store.create(DEPLOYMENTS, _deployment())
    assert created["metadata"]["generation"] == 1
    created["metadata"]["labels"] = {"extra": "label"}
    relabelled = store.update(DEPLOYMENTS, created)
    assert relabelled["metadata"]["generation"] == 1
    relabelled["spec"]["replicas"] = 5
    assert store.update(DEPLOYMENTS, relabelled)["metadata"]["generation"] == 2


def test_a_no_op_update_is_not_a_new_version() -> None:
    store = Store()
    created = store.create(CONFIGMAPS, _cm("a"))
    assert (
        store.update(CONFIGMAPS, created)["metadata"]["resourceVersion"]
        == created["metadata"]["resourceVersion"]
    )


def test_status_subresource_and_main_resource_keep_to_their_parts() -> None:
    store = Store()
    created = store.create(DEPLOYMENTS, _deployment())
    created["status"] = {"replicas": 7}
    assert "status" not in store.update(DEPLOYMENTS, created)  # the main resource ignores status
    latest = store.get(DEPLOYMENTS, "default", "web")
    latest["status"], latest["spec"]["replicas"] = {"replicas": 7}, 9
    written = store.update(DEPLOYMENTS, latest, "status")
    assert written["status"] == {"replicas": 7} and written["spec"]["replicas"] == 2


def test_watch_from_a_resource_version_sees_what_came_after() -> None:
    store = Store()
    before = store.create(CONFIGMAPS, _cm("a"))
    since = int(before["metadata"]["resourceVersion"])
    updated = store.update(CONFIGMAPS, dict(before, data={"k": "v"}))
    store.create(CONFIGMAPS, _cm("b"))
    store.delete(CONFIGMAPS, "default", "a")
    watch = store.watch(CONFIGMAPS, "default", since)
    events = [watch.queue.get_nowait() for _ in range(watch.queue.qsize())]
    assert [(e.type, e.object["metadata"]["name"]) for e in events if e] == [
        ("MODIFIED", "a"),
        ("ADDED", "b"),
        ("DELETED", "a"),
    ]
    assert (
        events[0]
        and events[0].object["metadata"]["resourceVersion"]
        == updated["metadata"]["resourceVersion"]
    )
    store.create(CONFIGMAPS, _cm("c"))  # and what happens next
    live = watch.queue.get_nowait()
    assert live and (live.type, live.object["metadata"]["name"]) == ("ADDED", "c")


def test_watch_from_a_version_no_longer_kept_is_410_gone() -> None:
    store = Store(history=3)
    for name in "abcdef":
        store.create(CONFIGMAPS, _cm(name))
    with pytest.raises(ApiError) as error:
        store.watch(CONFIGMAPS, None, 1)
    assert error.value.code == 410 and error.value.reason == "Expired"
    assert store.watch(CONFIGMAPS, None, store.revision - 2).queue.qsize() == 2


def test_watch_with_a_selector_sees_only_matching_objects() -> None:
    store = Store()
    watch = store.watch(CONFIGMAPS, None, 0, label_matcher("tier=web"))
    store.create(CONFIGMAPS, _cm("db", tier="db"))
    store.create(CONFIGMAPS, _cm("web", tier="web"))
    event = watch.queue.get_nowait()
    assert event and event.object["metadata"]["name"] == "web" and watch.queue.empty()


def test_a_change_in_or_out_of_a_watchs_selection_is_added_or_deleted() -> None:
    store = Store()
    created = store.create(CONFIGMAPS, _cm("a", tier="db"))
    watch = store.watch(CONFIGMAPS, None, 0, label_matcher("tier=web"))
    moved_in = store.update(
        CONFIGMAPS, dict(created, metadata={**created["metadata"], "labels": {"tier": "web"}})
    )
    store.update(
        CONFIGMAPS, dict(moved_in, metadata={**moved_in["metadata"], "labels": {"tier": "db"}})
    )
    events = [watch.queue.get_nowait() for _ in range(watch.queue.qsize())]
    assert [e.type for e in events if e] == ["ADDED", "DELETED"]


# -- selectors ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", {"web-a", "web-b"}),
        ("app==web,track!=canary", {"web-a"}),
        ("app in (web,db),track", {"web-b"}),
        ("app notin (web)", {"db"}),
        ("!track", {"web-a", "db"}),
        ("", {"web-a", "web-b", "db"}),
    ],
)
def test_label_selectors(selector: str, expected: set[str]) -> None:
    store = Store()
    store.create(CONFIGMAPS, _cm("web-a", app="web"))
    store.create(CONFIGMAPS, _cm("web-b", app="web", track="canary"))
    store.create(CONFIGMAPS, _cm("db", app="db"))
    items, _ = store.list(CONFIGMAPS, "default", label_matcher(selector))
    assert {i["metadata"]["name"] for i in items} == expected


def test_field_selectors_and_an_unsupported_field() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "status": {"phase": "Pending"}}
    assert field_matcher("metadata.name=p,status.phase=Pending", "Pod")(pod)
    assert not field_matcher("status.phase!=Pending", "Pod")(pod)
    with pytest.raises(ApiError) as error:
        field_matcher("spec.replicas=3", "Deployment")
    assert error.value.code == 400 and "field label not supported" in error.value.message


# -- patches -----------------------------------------------------------------------------
POD_SPEC = {
    "spec": {
        "containers": [
            {
                "name": "app",
                "image": "app:1",
                "env": [{"name": "A", "value": "1"}],
                "ports": [{"containerPort": 80}],
            },
            {"name": "side", "image": "side:1"},
        ]
    }
}


def test_json_patch_operations() -> None:
    result = patch.apply(
        patch.JSON_PATCH,
        POD_SPEC,
        [
            {"op": "replace", "path": "/spec/containers/0/image", "value": "app:2"},
            {"op": "add", "path": "/spec/containers/0/env/-", "value": {"name": "B", "value": "2"}},
            {"op": "remove", "path": "/spec/containers/1"},
            {"op": "test", "path": "/spec/containers/0/name", "value": "app"},
        ],
    )
    container = result["spec"]["containers"]
    assert len(container) == 1 and container[0]["image"] == "app:2"
    assert [e["name"] for e in container[0]["env"]] == ["A", "B"]
    with pytest.raises(ApiError) as error:
        patch.apply(
            patch.JSON_PATCH,
            POD_SPEC,
            [{"op": "test", "path": "/spec/containers/0/name", "value": "x"}],
        )
    assert error.value.code == 422


def test_merge_patch_replaces_lists_and_deletes_with_null() -> None:
    result = patch.apply(
        patch.MERGE_PATCH, POD_SPEC, {"spec": {"containers": [{"name": "only"}]}, "extra": None}
    )
    assert result["spec"]["containers"] == [{"name": "only"}]
    cleared = patch.apply(patch.MERGE_PATCH, {"a": 1, "b": 2}, {"a": None})
    assert cleared == {"b": 2}


def test_strategic_merge_merges_containers_env_and_ports_by_their_keys() -> None:
    result = patch.apply(
        patch.STRATEGIC_MERGE_PATCH,
        POD_SPEC,
        {
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": "app:2",
                        "env": [{"name": "B", "value": "2"}],
                        "ports": [{"containerPort": 81}],
                    },
                    {"name": "side", "$patch": "delete"},
                ]
            }
        },
    )
    (app,) = result["spec"]["containers"]
    assert app["image"] == "app:2"
    assert [e["name"] for e in app["env"]] == ["A", "B"]
    assert [p["containerPort"] for p in app["ports"]] == [80, 81]


def test_strategic_merge_service_ports_by_port_and_element_order() -> None:
    service = {"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}}
    result = patch.apply(
        patch.STRATEGIC_MERGE_PATCH,
        service,
        {
            "spec": {
                "$setElementOrder/ports": [{"port": 443}, {"port": 80}],
                "ports": [{"port": 80, "name": "web"}],
            }
        },
    )
    assert [(p["port"], p["name"]) for p in result["spec"]["ports"]] == [
        (443, "https"),
        (80, "web"),
    ]


def test_strategic_merge_replace_directive_and_plain_lists() -> None:
    result = patch.apply(
        patch.STRATEGIC_MERGE_PATCH,
        {"spec": {"selector": {"a": "1", "b": "2"}, "args": ["x", "y"]}},
        {"spec": {"selector": {"$patch": "replace", "c": "3"}, "args": ["z"]}},
    )
    assert result == {"spec": {"selector": {"c": "3"}, "args": ["z"]}}


def test_server_side_apply_is_refused_with_a_415() -> None:
    with pytest.raises(ApiError) as error:
        patch.apply(patch.APPLY_PATCH, {}, {})
    assert error.value.code == 415 and "server-side apply" in error.value.message


# -- cascading deletion ------------------------------------------------------------------
def _cluster_with_a_deployment() -> Store:
    store = Store()
    bootstrap.populate(store, 6443)
    store.create(DEPLOYMENTS, _deployment(replicas=2))
    _settle(store)
    return store


@pytest.mark.parametrize("policy", ["Background", "Foreground"])
def test_deleting_a_deployment_takes_its_replicasets_and_pods(policy: str) -> None:
    store = _cluster_with_a_deployment()
    assert len(store.list(REPLICASETS, "default")[0]) == 1
    assert len(store.list(PODS, "default")[0]) == 2
    garbage.delete(store, DEPLOYMENTS, "default", "web", policy)
    assert store.list(REPLICASETS, "default")[0] == []
    assert store.list(PODS, "default")[0] == []


def test_orphan_deletion_leaves_the_dependents_without_their_owner() -> None:
    store = _cluster_with_a_deployment()
    garbage.delete(store, DEPLOYMENTS, "default", "web", "Orphan")
    (rs,) = store.list(REPLICASETS, "default")[0]
    assert not rs["metadata"]["ownerReferences"]
    assert len(store.list(PODS, "default")[0]) == 2


def test_foreground_deletion_marks_the_owner_before_it_goes() -> None:
    store = _cluster_with_a_deployment()
    watch = store.watch(DEPLOYMENTS, None, 0)
    garbage.delete(store, DEPLOYMENTS, "default", "web", "Foreground")
    events = [watch.queue.get_nowait() for _ in range(watch.queue.qsize())]
    kinds = [e.type for e in events if e]
    assert kinds == ["MODIFIED", "DELETED"]
    marked = events[0]
    assert marked and marked.object["metadata"]["deletionTimestamp"]
    assert "foregroundDeletion" in marked.object["metadata"]["finalizers"]


def test_a_deleted_namespace_terminates_then_goes_with_its_contents(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import datetime

    from lab.api.controllers import namespace

    store = _cluster_with_a_deployment()
    namespaces = lookup("", "v1", "namespaces")
    assert namespaces
    store.create(namespaces, {"metadata": {"name": "doomed"}})
    store.create(
        CONFIGMAPS, dict(_cm("inside"), metadata={"name": "inside", "namespace": "doomed"})
    )
    marked = garbage.delete(store, namespaces, "", "doomed", "Background")
    assert marked["status"]["phase"] == "Terminating" and marked["metadata"]["deletionTimestamp"]
    assert store.find(CONFIGMAPS, "doomed", "inside") is not None  # still there for kubectl
    monkeypatch.setattr(namespace, "GRACE", datetime.timedelta(0))
    namespace.reconcile(store)
    assert store.find(namespaces, "", "doomed") is None
    assert store.find(CONFIGMAPS, "doomed", "inside") is None


# -- controllers -------------------------------------------------------------------------
def _kubelet_readies_every_pod(store: Store) -> None:
    """What a kubelet would do once the containers pass their readiness probes."""
    for pod in store.list(PODS)[0]:
        ready = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        if pod.get("status") != ready:
            pod["status"] = ready
            store.update(PODS, pod, "status")


def _replicas_by_revision(store: Store) -> dict[str, int]:
    return {
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: rs["spec"]["replicas"]
        for rs in store.list(REPLICASETS, "default")[0]
    }


def test_a_replicaset_per_deployment_revision() -> None:
    store = _cluster_with_a_deployment()
    (first,) = store.list(REPLICASETS, "default")[0]
    assert first["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    hash_ = first["metadata"]["labels"]["pod-template-hash"]
    assert first["metadata"]["name"] == f"web-{hash_}"
    assert first["spec"]["selector"]["matchLabels"]["pod-template-hash"] == hash_
    deploy = store.get(DEPLOYMENTS, "default", "web")
    deploy["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"
    store.update(DEPLOYMENTS, deploy)
    _settle(store)
    assert set(_replicas_by_revision(store)) == {"1", "2"}
    status = store.get(DEPLOYMENTS, "default", "web")["status"]
    assert status["observedGeneration"] == 2


def test_a_rolling_update_stops_while_new_pods_are_not_ready() -> None:
    store = _cluster_with_a_deployment()  # 2 replicas: maxSurge 25% -> 1, maxUnavailable -> 0
    deploy = store.get(DEPLOYMENTS, "default", "web")
    deploy["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"
    store.update(DEPLOYMENTS, deploy)
    _settle(store)
    assert _replicas_by_revision(store) == {"1": 2, "2": 1}  # one surge pod, the old kept
    assert len(store.list(PODS, "default")[0]) == 3


def test_a_rolling_update_completes_as_pods_become_ready_within_its_limits() -> None:
    store = _cluster_with_a_deployment()
    _kubelet_readies_every_pod(store)
    _settle(store)
    deploy = store.get(DEPLOYMENTS, "default", "web")
    deploy["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"
    store.update(DEPLOYMENTS, deploy)
    for _ in range(10):
        _settle(store)
        replicas = _replicas_by_revision(store)
        assert sum(replicas.values()) <= 3  # replicas + maxSurge
        ready = [p for p in store.list(PODS, "default")[0] if p["status"].get("phase") == "Running"]
        assert len(ready) >= 2  # replicas - maxUnavailable stay ready throughout
        if replicas == {"1": 0, "2": 2}:
            break
        _kubelet_readies_every_pod(store)
    assert _replicas_by_revision(store) == {"1": 0, "2": 2}
    new_hash = next(rs for rs in store.list(REPLICASETS, "default")[0] if rs["spec"]["replicas"])[
        "metadata"
    ]["labels"]["pod-template-hash"]
    assert {
        p["metadata"]["labels"]["pod-template-hash"] for p in store.list(PODS, "default")[0]
    } == {new_hash}
    status = store.get(DEPLOYMENTS, "default", "web")["status"]
    assert (status["updatedReplicas"], status["availableReplicas"]) == (2, 2)


@pytest.mark.parametrize(
    ("spec", "new", "olds", "expected"),
    [
        ({"replicas": 3}, (3, 0, 3), [], (3, [])),
        ({"replicas": 5}, (3, 3, 3), [(0, 0, 0)], (5, [0])),  # plain scaling
        ({"replicas": 4}, (0, 0, 0), [(4, 4, 4)], (1, [3])),  # 25%: surge 1, unavailable 1
        ({"replicas": 4}, (1, 0, 1), [(3, 3, 3)], (2, [3])),  # grows to the surge; old waits
        ({"replicas": 4}, (1, 1, 1), [(3, 3, 3)], (2, [2])),  # one new available: one old goes
        ({"replicas": 2, "strategy": {"type": "Recreate"}}, (0, 0, 0), [(2, 2, 2)], (0, [0])),
        ({"replicas": 2, "strategy": {"type": "Recreate"}}, (0, 0, 0), [(0, 0, 0)], (2, [0])),
        (
            {"replicas": 3, "strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}},
            (0, 0, 0),
            [(3, 3, 3)],
            (0, [2]),
        ),  # both zero: one may be unavailable
    ],
)
def test_rollout_plans(
    spec: dict[str, Any],
    new: tuple[int, int, int],
    olds: list[tuple[int, int, int]],
    expected: tuple[int, list[int]],
) -> None:
    from lab.api.controllers import rollout

    sizes = [rollout.Size(*o) for o in olds]
    assert rollout.plan(spec, rollout.Size(*new), sizes) == expected


def test_a_paused_deployment_makes_no_new_revision_until_resumed() -> None:
    store = _cluster_with_a_deployment()
    deploy = store.get(DEPLOYMENTS, "default", "web")
    deploy["spec"]["paused"] = True
    deploy["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"
    store.update(DEPLOYMENTS, deploy)
    _settle(store)
    assert len(store.list(REPLICASETS, "default")[0]) == 1
    deploy = store.get(DEPLOYMENTS, "default", "web")
    deploy["spec"]["paused"] = False
    store.update(DEPLOYMENTS, deploy)
    _settle(store)
    assert len(store.list(REPLICASETS, "default")[0]) == 2


def test_every_service_with_a_selector_gets_an_endpointslice_headless_too() -> None:
    store = Store()
    bootstrap.populate(store, 6443)
    for name, ip in (("db", None), ("db-headless", "None")):
        body: dict[str, Any] = {
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"app": "db"}, "ports": [{"port": 3306}]},
        }
        if ip:
            body["spec"]["clusterIP"] = ip
        store.create(SERVICES, admission.default(store, SERVICES, body))
    _settle(store)
    slices = {
        s["metadata"]["labels"]["kubernetes.io/service-name"]: s for s in store.list(SLICES)[0]
    }
    assert {"db", "db-headless", "kube-dns", "kubernetes"} <= set(slices)
    headless = slices["db-headless"]
    assert (
        headless["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"]
        == "endpointslice-controller.k8s.io"
    )
    assert "service.kubernetes.io/headless" in headless["metadata"]["labels"]
    assert headless["metadata"]["ownerReferences"][0]["name"] == "db-headless"


def test_a_pod_with_an_address_becomes_an_endpoint_with_its_conditions() -> None:
    store = Store()
    bootstrap.populate(store, 6443)
    store.create(
        SERVICES,
        admission.default(
            store,
            SERVICES,
            {
                "metadata": {"name": "db", "namespace": "default"},
                "spec": {
                    "selector": {"app": "db"},
                    "ports": [{"port": 3306, "targetPort": "mysql"}],
                },
            },
        ),
    )
    pod = {
        "metadata": {"name": "db-0", "namespace": "default", "labels": {"app": "db"}},
        "spec": {
            "nodeName": "lab-node-1",
            "containers": [
                {"name": "db", "image": "db", "ports": [{"name": "mysql", "containerPort": 3307}]}
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": "10.244.1.5",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    store.create(PODS, pod)
    _settle(store)
    (slice_,) = [
        s
        for s in store.list(SLICES, "default")[0]
        if s["metadata"]["labels"]["kubernetes.io/service-name"] == "db"
    ]
    (endpoint,) = slice_["endpoints"]
    assert endpoint["addresses"] == ["10.244.1.5"]
    assert endpoint["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert slice_["ports"] == [{"name": "", "port": 3307, "protocol": "TCP"}]


def _db_service_and_pod(store: Store, service: dict[str, Any], pod_spec: dict[str, Any]) -> Obj:
    """One Service selecting one running, not-ready pod; its EndpointSlice's one endpoint."""
    store.create(SERVICES, admission.default(store, SERVICES, service))
    pod = {
        "metadata": {"name": "db-0", "namespace": "default", "labels": {"app": "db"}},
        "spec": {"containers": [{"name": "db", "image": "db"}], **pod_spec},
        "status": {"phase": "Running", "podIP": "10.244.1.5"},
    }
    store.create(PODS, pod)
    _settle(store)
    name = service["metadata"]["name"]
    (slice_,) = [
        s
        for s in store.list(SLICES, "default")[0]
        if s["metadata"]["labels"]["kubernetes.io/service-name"] == name
    ]
    (endpoint,) = slice_["endpoints"]
    return endpoint


def _headless(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 3306}], **spec},
    }


def test_an_endpoint_has_the_pods_hostname_when_its_subdomain_is_the_service() -> None:
    store = Store()
    bootstrap.populate(store, 6443)
    spec = {"hostname": "db-0", "subdomain": "db-headless"}
    endpoint = _db_service_and_pod(store, _headless("db-headless"), spec)
    assert endpoint["hostname"] == "db-0"


def test_an_endpoint_has_no_hostname_under_another_service() -> None:
    store = Store()
    bootstrap.populate(store, 6443)
    spec = {"hostname": "db-0", "subdomain": "db-headless"}
    endpoint = _db_service_and_pod(store, _headless("db-other"), spec)
    assert "hostname" not in endpoint


def test_publish_not_ready_addresses_makes_a_not_ready_pod_a_ready_endpoint() -> None:
    store = Store()
    bootstrap.populate(store, 6443)
    service = _headless("db-headless", publishNotReadyAddresses=True)
    endpoint = _db_service_and_pod(store, service, {})
    assert endpoint["conditions"] == {"ready": True, "serving": False, "terminating": False}


def test_every_namespace_gets_a_default_serviceaccount() -> None:
    store = Store()
    bootstrap.populate(store, 6443)
    _settle(store)
    accounts = store.list(lookup("", "v1", "serviceaccounts"))[0]  # type: ignore[arg-type]
    assert {a["metadata"]["namespace"] for a in accounts} == set(bootstrap.NAMESPACES)


# -- admission ---------------------------------------------------------------------------
def test_a_kind_the_lab_cannot_run_is_refused_naming_it() -> None:
    daemonsets = by_kind("apps/v1", "DaemonSet")
    assert daemonsets
    with pytest.raises(ApiError) as error:
        admission.refuse_unsupported(daemonsets, "agent")
    assert error.value.code == 403
    assert 'daemonsets.apps "agent" is forbidden' in error.value.message
    assert "cannot run a DaemonSet" in error.value.message
    ingresses = by_kind("networking.k8s.io/v1", "Ingress")
    assert ingresses
    with pytest.raises(ApiError) as error:
        admission.refuse_unsupported(ingresses, "web")
    assert "cannot run an Ingress: the lab has no ingress controller" in error.value.message


def test_a_kind_stored_without_acting_says_so_and_endpoints_are_deprecated() -> None:
    hpa = by_kind("autoscaling/v2", "HorizontalPodAutoscaler")
    endpoints = by_kind("v1", "Endpoints")
    assert hpa and endpoints
    (warning,) = admission.warnings_for(hpa, write=True)
    assert "stored but not acted on" in warning
    assert admission.warnings_for(endpoints) == [admission.ENDPOINTS_WARNING]
    assert admission.warnings_for(DEPLOYMENTS, write=True) == []


def test_unknown_fields_are_refused_under_strict_and_warned_about_otherwise() -> None:
    body = _cm("a", {"k": "v"})
    body.update(apiVersion="v1", kind="ConfigMap", datta={"typo": "x"})
    with pytest.raises(ApiError) as error:
        admission.check_fields(CONFIGMAPS, body, "Strict")
    assert error.value.code == 400 and 'unknown field "datta"' in error.value.message
    pruned, warnings = admission.check_fields(CONFIGMAPS, body, "Warn")
    assert warnings == ['unknown field "datta"'] and "datta" not in pruned


def test_a_schema_error_is_422_invalid() -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": 5}}
    with pytest.raises(ApiError) as error:
        admission.check_fields(CONFIGMAPS, body, "Strict")
    assert error.value.code == 422 and "data.k" in error.value.message


def test_services_get_a_cluster_ip_from_the_range_and_only_clusterip_type() -> None:
    store = Store()
    bootstrap.populate(store, 6443)
    svc = admission.default(
        store,
        SERVICES,
        {"metadata": {"name": "web", "namespace": "default"}, "spec": {"ports": [{"port": 80}]}},
    )
    assert svc["spec"]["clusterIP"].startswith("10.") and svc["spec"]["clusterIPs"] == [
        svc["spec"]["clusterIP"]
    ]
    assert svc["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    with pytest.raises(ApiError) as taken:
        admission.default(
            store,
            SERVICES,
            {
                "metadata": {"name": "x", "namespace": "default"},
                "spec": {"clusterIP": "10.96.0.10"},
            },
        )
    assert taken.value.code == 422 and "already allocated" in taken.value.message
    with pytest.raises(ApiError) as node_port:
        admission.default(
            store, SERVICES, {"metadata": {"name": "x"}, "spec": {"type": "NodePort"}}
        )
    assert node_port.value.code == 422 and "NodePort" in node_port.value.message


def test_bootstrap_has_kubernetes_and_the_dns_service_with_its_real_ports() -> None:
    store = Store()
    bootstrap.populate(store, 6443)
    kubernetes = store.get(SERVICES, "default", "kubernetes")
    assert (
        kubernetes["spec"]["clusterIP"] == "10.96.0.1"
        and kubernetes["spec"]["ports"][0]["port"] == 443
    )
    dns = store.get(SERVICES, "kube-system", "kube-dns")
    assert dns["spec"]["clusterIP"] == "10.96.0.10"
    assert [(p["port"], p["protocol"]) for p in dns["spec"]["ports"]] == [
        (53, "UDP"),
        (53, "TCP"),
        (9153, "TCP"),
    ]


# -- printers ----------------------------------------------------------------------------
def _columns(kind: str) -> list[tuple[str, int]]:
    table = printers.table(kind, [], "1")
    return [(c["name"], c["priority"]) for c in table["columnDefinitions"]]


def test_table_columns_are_kube_apiservers() -> None:
    assert _columns("Pod") == [
        ("Name", 0),
        ("Ready", 0),
        ("Status", 0),
        ("Restarts", 0),
        ("Age", 0),
        ("IP", 1),
        ("Node", 1),
        ("Nominated Node", 1),
        ("Readiness Gates", 1),
    ]
    assert [n for n, p in _columns("Service") if p == 0] == [
        "Name",
        "Type",
        "Cluster-IP",
        "External-IP",
        "Port(s)",
        "Age",
    ]
    assert [n for n, _ in _columns("EndpointSlice")] == [
        "Name",
        "AddressType",
        "Ports",
        "Endpoints",
        "Age",
    ]
    assert [n for n, p in _columns("Deployment") if p == 0] == [
        "Name",
        "Ready",
        "Up-to-date",
        "Available",
        "Age",
    ]
    assert [n for n, p in _columns("Event") if p == 0] == [
        "Last Seen",
        "Type",
        "Reason",
        "Object",
        "Message",
    ]
    assert [n for n, _ in _columns("PodDisruptionBudget")] == [
        "Name",
        "Min Available",
        "Max Unavailable",
        "Allowed Disruptions",
        "Age",
    ]


def test_table_rows_for_the_dns_service_and_a_pending_pod() -> None:
    store = Store()
    bootstrap.populate(store, 6443)
    dns = store.get(SERVICES, "kube-system", "kube-dns")
    row = printers.table("Service", [dns], "1")["rows"][0]
    assert row["cells"][:5] == [
        "kube-dns",
        "ClusterIP",
        "10.96.0.10",
        "<none>",
        "53/UDP,53/TCP,9153/TCP",
    ]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    pod = admission.default(
        store,
        PODS,
        {
            "metadata": {"name": "p", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        },
    )
    cells = printers.table("Pod", [pod], "1", "None")["rows"][0]["cells"]
    assert cells[:4] == ["p", "0/1", "Pending", "0"] and cells[5:] == ["<none>"] * 4


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (119, "119s"),
        (200, "3m20s"),
        (600, "10m"),
        (3 * 3600 + 600, "3h10m"),
        (30 * 3600, "30h"),
        (3 * 86400 + 7200, "3d2h"),
        (40 * 86400, "40d"),
    ],
)
def test_ages_read_as_kubectl_prints_them(seconds: int, text: str) -> None:
    assert printers.human_duration(seconds) == text


# -- kubeconfig --------------------------------------------------------------------------
def test_the_clusterip_lab_context_is_added_and_removed_leaving_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "kube" / "config"
    path.parent.mkdir()
    other = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kind-x", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "kind-x", "user": {}}],
        "contexts": [{"name": "kind-x", "context": {"cluster": "kind-x", "user": "kind-x"}}],
        "current-context": "kind-x",
    }
    path.write_text(yaml.safe_dump(other))
    kubeconfig.add_context(path, "https://127.0.0.1:6443", b"CA", "secret-token")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = yaml.safe_load(path.read_text())
    assert config["current-context"] == "clusterip-lab"
    assert {c["name"] for c in config["contexts"]} == {"kind-x", "clusterip-lab"}
    user = next(u for u in config["users"] if u["name"] == "clusterip-lab")
    assert user["user"]["token"] == "secret-token"
    kubeconfig.add_context(
        path, "https://127.0.0.1:7443", b"CA", "t2"
    )  # again: replaced, not doubled
    assert [c["name"] for c in yaml.safe_load(path.read_text())["clusters"]].count(
        "clusterip-lab"
    ) == 1
    assert kubeconfig.remove_context(path)
    config = yaml.safe_load(path.read_text())
    assert [c["name"] for c in config["contexts"]] == ["kind-x"] and config["current-context"] == ""
    assert not kubeconfig.remove_context(path)


def test_a_standalone_kubeconfig_names_the_server_ca_and_token() -> None:
    config = kubeconfig.standalone("https://127.0.0.1:6443", b"PEM", "tok")
    assert config["current-context"] == "clusterip-lab"
    assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    assert config["clusters"][0]["cluster"]["certificate-authority-data"] == "UEVN"
    assert config["users"][0]["user"] == {"token": "tok"}


def test_a_statefulset_gets_its_ordinal_pods_and_loses_the_highest_first() -> None:
    store = Store()
    bootstrap.populate(store, 6443)
    statefulsets = lookup("apps", "v1", "statefulsets")
    assert statefulsets
    body = _deployment("db", replicas=2)
    body.update(kind="StatefulSet")
    body["spec"]["serviceName"] = "db-headless"
    store.create(statefulsets, admission.default(store, statefulsets, body))
    _settle(store)
    pods = {p["metadata"]["name"]: p for p in store.list(PODS, "default")[0]}
    assert set(pods) == {"db-0", "db-1"}
    assert pods["db-1"]["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "db-1"
    assert pods["db-0"]["spec"]["subdomain"] == "db-headless"
    sts = store.get(statefulsets, "default", "db")
    sts["spec"]["replicas"] = 1
    store.update(statefulsets, sts)
    _settle(store)
    assert [p["metadata"]["name"] for p in store.list(PODS, "default")[0]] == ["db-0"]


@pytest.mark.parametrize(
    ("spec", "ready", "allowed"),
    [
        ({"maxUnavailable": 1}, 3, 1),
        ({"maxUnavailable": 1}, 2, 0),
        ({"minAvailable": 1}, 3, 2),
        ({"minAvailable": "50%"}, 3, 1),
        ({"minAvailable": "50%"}, 0, 0),
    ],
)
def test_a_disruption_budget_says_how_many_pods_may_go(
    spec: dict[str, Any], ready: int, allowed: int
) -> None:
    store = Store()
    bootstrap.populate(store, 6443)
    budgets = lookup("policy", "v1", "poddisruptionbudgets")
    assert budgets
    for number in range(3):
        conditions = [{"type": "Ready", "status": "True" if number < ready else "False"}]
        store.create(
            PODS,
            {
                "metadata": {
                    "name": f"web-{number}",
                    "namespace": "default",
                    "labels": {"app": "web"},
                },
                "spec": {"containers": [{"name": "c", "image": "i"}]},
                "status": {"conditions": conditions},
            },
        )
    body = {
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec},
    }
    store.create(budgets, body)
    _settle(store)
    status = store.get(budgets, "default", "web")["status"]
    assert (status["expectedPods"], status["currentHealthy"], status["disruptionsAllowed"]) == (
        3,
        ready,
        allowed,
    )
    assert status["conditions"][0]["status"] == ("True" if allowed else "False")


# -- eviction ----------------------------------------------------------------------------
def _running_pods_under_a_budget(ready: int, budget: dict[str, Any]) -> Store:
    store = Store()
    bootstrap.populate(store, 6443)
    budgets = lookup("policy", "v1", "poddisruptionbudgets")
    assert budgets
    for number in range(2):
        conditions = [{"type": "Ready", "status": "True" if number < ready else "False"}]
        status = {"phase": "Running", "conditions": conditions}
        pod = {
            "metadata": {"name": f"web-{number}", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": status,
        }
        store.create(PODS, pod)
    selector = {"matchLabels": {"app": "web"}}
    store.create(
        budgets,
        {
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": selector, **budget},
        },
    )
    _settle(store)
    return store


def test_eviction_refused_by_the_budget_with_kube_apiservers_words() -> None:
    from lab.api import eviction

    store = _running_pods_under_a_budget(ready=2, budget={"minAvailable": 2})
    with pytest.raises(ApiError) as error:
        eviction.evict(store, "default", "web-0", {"kind": "Eviction"})
    assert error.value.code == 429 and error.value.reason == "TooManyRequests"
    assert (
        error.value.message == "Cannot evict pod as it would violate the pod's disruption budget."
    )
    assert error.value.details == {
        "causes": [
            {
                "reason": "DisruptionBudget",
                "message": "The disruption budget web needs 2 healthy pods and has 2 currently",
            }
        ]
    }
    assert store.find(PODS, "default", "web-0") is not None


def test_eviction_allowed_spends_the_budget_and_deletes_the_pod() -> None:
    from lab.api import eviction

    store = _running_pods_under_a_budget(ready=2, budget={"maxUnavailable": 1})
    answer = eviction.evict(store, "default", "web-0", {"kind": "Eviction"})
    assert answer["status"] == "Success" and store.find(PODS, "default", "web-0") is None
    budgets = lookup("policy", "v1", "poddisruptionbudgets")
    assert budgets
    assert store.get(budgets, "default", "web")["status"]["disruptionsAllowed"] == 0
    with pytest.raises(ApiError) as second:
        eviction.evict(store, "default", "web-1", {"kind": "Eviction"})
    assert second.value.code == 429


def test_a_pending_pod_is_evicted_whatever_the_budget() -> None:
    from lab.api import eviction

    store = _cluster_with_a_deployment()
    budgets = lookup("policy", "v1", "poddisruptionbudgets")
    assert budgets
    store.create(
        budgets,
        {
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "minAvailable": 2},
        },
    )
    pod = store.list(PODS, "default")[0][0]["metadata"]["name"]
    eviction.evict(store, "default", pod, {"kind": "Eviction"})
    assert store.find(PODS, "default", pod) is None


def test_under_sudo_the_kubeconfig_belongs_to_the_user_who_ran_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import pwd

    if os.geteuid() != 0:
        pytest.skip("only root can give a file away: this runs as root in CI")
    user = pwd.getpwnam("nobody")
    monkeypatch.setenv("SUDO_USER", "nobody")
    path = tmp_path / "home" / ".kube" / "config"
    (tmp_path / "home").mkdir()
    kubeconfig.add_context(path, "https://127.0.0.1:6443", b"CA", "tok")
    assert (path.stat().st_uid, path.stat().st_gid) == (user.pw_uid, user.pw_gid)
    assert path.parent.stat().st_uid == user.pw_uid  # ~/.kube made for them, theirs too
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_replicaset_scaled_down_removes_not_ready_pods_first() -> None:
    store = _cluster_with_a_deployment()
    (ready_pod, _other) = store.list(PODS, "default")[0]
    ready_pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    store.update(PODS, ready_pod, "status")
    deploy = store.get(DEPLOYMENTS, "default", "web")
    deploy["spec"]["replicas"] = 1
    store.update(DEPLOYMENTS, deploy)
    _settle(store)
    assert [p["metadata"]["name"] for p in store.list(PODS, "default")[0]] == [
        ready_pod["metadata"]["name"]
    ]


def test_custom_resource_definitions_are_refused_and_cronjobs_only_stored() -> None:
    crds = by_kind("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    cronjobs = by_kind("batch/v1", "CronJob")
    assert crds and cronjobs
    with pytest.raises(ApiError) as error:
        admission.refuse_unsupported(crds, "servicemonitors.monitoring.coreos.com")
    assert error.value.code == 403 and "not custom resources" in error.value.message
    admission.refuse_unsupported(cronjobs, "mysql-backup")  # accepted
    (warning,) = admission.warnings_for(cronjobs, write=True)
    assert "never starts a Job" in warning


# -- the scheduler -------------------------------------------------------------------------


def _lone_pod(store: Store) -> dict[str, Any]:
    pod = {
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"containers": [{"name": "web", "image": "web"}]},
    }
    return store.create(PODS, admission.default(store, PODS, pod))


def test_the_scheduler_binds_a_pod_to_the_ready_node_once() -> None:
    store = Store()
    bootstrap.populate(store, 6443)
    _lone_pod(store)
    scheduler.reconcile(store)
    pod = store.get(PODS, "default", "web")
    assert pod["spec"]["nodeName"] == "lab-node-1"
    assert [c["status"] for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"] == [
        "True"
    ]
    revision = store.revision
    scheduler.reconcile(store)
    assert store.revision == revision  # a bound pod is left alone


def test_without_a_ready_node_a_pod_stays_pending_and_unschedulable() -> None:
    store = Store()
    bootstrap.populate(store, 6443)
    nodes = lookup("", "v1", "nodes")
    assert nodes
    node = store.get(nodes, "", "lab-node-1")
    node["status"]["conditions"][0]["status"] = "False"
    store.update(nodes, node, "status")
    _lone_pod(store)
    scheduler.reconcile(store)
    pod = store.get(PODS, "default", "web")
    assert "nodeName" not in pod["spec"]
    (condition,) = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert (condition["status"], condition["reason"]) == ("False", "Unschedulable")
