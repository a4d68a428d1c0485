"""The lab's controllers, driven without root: the API server's state and a fake kubelet.

The fake runtime does what the kubelet does to the state and nothing else:
starting a pod gives it a network, deleting one marks it terminating; the
tests then say when a pod becomes ready or is finally gone.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from lab.apiserver import ApiServer
from lab.controllers import deployment, endpointslice, statefulset
from lab.kubelet import Pod
from lab.manifests import parse_documents
from lab.naming import NODE_POD_CIDR
from tests.lab.fakes import FakeKubelet

NS = "shop"


def _template(app: str, port_name: str = "http", port: int = 8080) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {
            "containers": [
                {
                    "name": app,
                    "image": "clusterip-demo/backend:0.1.0",
                    "ports": [{"name": port_name, "containerPort": port}],
                }
            ]
        },
    }


def _docs(strategy: dict[str, Any] | None = None, web_replicas: int = 3) -> list[dict[str, Any]]:
    return [
        {
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {
                "replicas": web_replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": strategy
                or {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": _template("web"),
            },
        },
        {
            "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": NS},
            "spec": {
                "replicas": 2,
                "serviceName": "db-headless",
                "selector": {"matchLabels": {"app": "db"}},
                "template": _template("db", "sql", 3306),
            },
        },
        {
            "kind": "Service",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
        {
            "kind": "Service",
            "metadata": {"name": "db-headless", "namespace": NS},
            "spec": {
                "clusterIP": "None",
                "selector": {"app": "db"},
                "ports": [{"name": "sql", "port": 3306, "targetPort": "sql"}],
            },
        },
    ]


def _cluster(**kwargs: Any) -> tuple[ApiServer, FakeKubelet]:
    api = ApiServer(parse_documents(_docs(**kwargs)), print_events=False, seed=1)
    api.allocate_service_ips()
    return api, FakeKubelet(api)


def _live(api: ApiServer, key: str) -> list[Pod]:
    return [p for p in api.pods_of(key) if not p.deleting]


# --- Deployment ---------------------------------------------------------------------------------


def test_a_deployment_gets_its_replicas_named_by_template_hash() -> None:
    api, kubelet = _cluster()
    deployment.reconcile(api, "Deployment/web", kubelet)
    pods = api.pods_of("Deployment/web")
    assert len(pods) == 3 and sorted(kubelet.started) == sorted(p.name for p in pods)
    current = api.current_hash("Deployment/web")
    for pod in pods:
        assert pod.name.startswith(f"web-{current}-") and len(pod.name.rsplit("-", 1)[1]) == 5
        assert pod.labels == {"app": "web", "pod-template-hash": current}
        assert pod.namespace == NS
        assert ipaddress.ip_address(pod.ip) in NODE_POD_CIDR
    assert len({p.ip for p in pods}) == 3
    # Nothing changes on a second pass.
    deployment.reconcile(api, "Deployment/web", kubelet)
    assert len(kubelet.started) == 3 and not kubelet.deleted


def test_a_deleted_pod_is_replaced_while_it_still_terminates() -> None:
    api, kubelet = _cluster()
    deployment.reconcile(api, "Deployment/web", kubelet)
    victim = api.pods_of("Deployment/web")[0]
    kubelet.delete_pod(victim)
    deployment.reconcile(api, "Deployment/web", kubelet)
    assert len(kubelet.started) == 4
    assert victim.name in api.pods  # still terminating, its IP still taken
    assert len({p.ip for p in api.pods.values()}) == 4


def test_rolling_update_by_max_surge_one_and_max_unavailable_zero() -> None:
    api, kubelet = _cluster()
    key = "Deployment/web"
    deployment.reconcile(api, key, kubelet)
    old = api.pods_of(key)
    kubelet.ready(*old)
    api.rollout_restart("deployment/web")
    new_hash = api.current_hash(key)
    for step in range(3):
        deployment.reconcile(api, key, kubelet)
        new = [p for p in _live(api, key) if p.template_hash == new_hash]
        # One pod over the count at most, and never fewer than 3 ready ones serving.
        assert len(_live(api, key)) <= 4
        assert sum(p.ready for p in _live(api, key)) >= 3
        assert len(new) == step + 1
        kubelet.ready(*new)
        deployment.reconcile(api, key, kubelet)
        assert len(kubelet.deleted) == step + 1
        kubelet.gone(*[p for p in api.pods_of(key) if p.deleting])
    assert {p.template_hash for p in api.pods_of(key)} == {new_hash}
    assert all(p.name in kubelet.deleted for p in old)


def test_a_new_pod_that_never_gets_ready_stops_the_rollout() -> None:
    api, kubelet = _cluster()
    key = "Deployment/web"
    deployment.reconcile(api, key, kubelet)
    kubelet.ready(*api.pods_of(key))
    api.rollout_restart("web")
    for _ in range(5):
        deployment.reconcile(api, key, kubelet)
    assert len(_live(api, key)) == 4 and not kubelet.deleted


def test_recreate_stops_every_old_pod_before_the_first_new_one() -> None:
    api, kubelet = _cluster(strategy={"type": "Recreate"})
    key = "Deployment/web"
    deployment.reconcile(api, key, kubelet)
    kubelet.ready(*api.pods_of(key))
    api.rollout_restart("deployment/web")
    deployment.reconcile(api, key, kubelet)
    assert len(kubelet.deleted) == 3 and len(kubelet.started) == 3
    # The old ones are terminating, not counted: the new ones come now.
    deployment.reconcile(api, key, kubelet)
    assert len(kubelet.started) == 6


def test_scale_down_takes_not_ready_pods_first() -> None:
    api, kubelet = _cluster()
    key = "Deployment/web"
    deployment.reconcile(api, key, kubelet)
    pods = api.pods_of(key)
    kubelet.ready(pods[0], pods[2])
    api.scale("deployment/web", 2)
    deployment.reconcile(api, key, kubelet)
    assert kubelet.deleted == [pods[1].name]
    with pytest.raises(ValueError):
        api.scale("web", -1)
    with pytest.raises(KeyError):
        api.scale("deployment/nope", 1)


def test_percentages_round_as_kubernetes_rounds_them() -> None:
    assert deployment.resolve("25%", 3, round_up=True) == 1
    assert deployment.resolve("25%", 3, round_up=False) == 0
    assert deployment.resolve(2, 3, round_up=False) == 2
    assert deployment.resolve("3", 10, round_up=True) == 3


# --- StatefulSet ---------------------------------------------------------------------------------


def test_statefulset_pods_come_in_order_each_after_the_one_before_is_ready() -> None:
    api, kubelet = _cluster()
    key = "StatefulSet/db"
    statefulset.reconcile(api, key, kubelet)
    statefulset.reconcile(api, key, kubelet)
    assert kubelet.started == ["db-0"]
    db0 = api.pods["db-0"]
    assert db0.ordinal == 0
    assert db0.labels["statefulset.kubernetes.io/pod-name"] == "db-0"
    assert db0.labels["apps.kubernetes.io/pod-index"] == "0"
    # Its DNS name, under the governing headless Service.
    assert db0.hostname_aliases == [f"db-0.db-headless.{NS}.svc.cluster.local"]
    kubelet.ready(db0)
    statefulset.reconcile(api, key, kubelet)
    assert kubelet.started == ["db-0", "db-1"]


def test_a_statefulset_pod_comes_back_with_its_name_once_the_old_one_is_gone() -> None:
    api, kubelet = _cluster()
    key = "StatefulSet/db"
    statefulset.reconcile(api, key, kubelet)
    kubelet.ready(api.pods["db-0"])
    statefulset.reconcile(api, key, kubelet)
    kubelet.ready(api.pods["db-1"])
    kubelet.delete_pod(api.pods["db-0"])
    statefulset.reconcile(api, key, kubelet)
    assert kubelet.started == ["db-0", "db-1"]  # not while db-0 still terminates
    kubelet.gone(api.pods["db-0"])
    statefulset.reconcile(api, key, kubelet)
    assert kubelet.started == ["db-0", "db-1", "db-0"]


def test_a_statefulset_scales_down_from_the_highest_ordinal() -> None:
    api, kubelet = _cluster()
    key = "StatefulSet/db"
    for _ in range(2):
        statefulset.reconcile(api, key, kubelet)
        kubelet.ready(*api.pods_of(key))
    api.scale("sts/db", 0)
    statefulset.reconcile(api, key, kubelet)
    assert kubelet.deleted == ["db-1"]


# --- EndpointSlices ------------------------------------------------------------------------------


def test_endpoints_resolve_named_target_ports_and_carry_conditions() -> None:
    api, kubelet = _cluster()
    deployment.reconcile(api, "Deployment/web", kubelet)
    a, b, c = sorted(api.pods_of("Deployment/web"), key=lambda p: ipaddress.ip_address(p.ip))
    kubelet.ready(a, b)
    kubelet.delete_pod(b)  # terminating, still serving
    slices = endpointslice.EndpointSliceController(api)
    rules = slices.sync()
    # The headless Service has no ClusterIP: no kube-proxy rules for it.
    assert [r.port_name for r in rules] == [f"{NS}/web:http"]
    rule = rules[0]
    assert (rule.cluster_ip, rule.port, rule.protocol) == (api.cluster_ips[f"{NS}/web"], 80, "TCP")
    got = {e.pod: (e.port, e.ready, e.serving, e.terminating) for e in rule.endpoints}
    assert got == {
        a.name: (8080, True, True, False),
        b.name: (8080, False, True, True),
        c.name: (8080, False, False, False),
    }
    assert [e.pod for e in rule.usable()] == [a.name]
    events = [e for e in api.events if e.obj.startswith("endpointslice/")]
    assert len(events) == 1 and f"{a.ip}:8080" in events[0].message
    slices.sync()
    assert len([e for e in api.events if e.obj.startswith("endpointslice/")]) == 1


def test_pods_of_another_namespace_or_without_network_are_no_endpoints() -> None:
    api, kubelet = _cluster()
    deployment.reconcile(api, "Deployment/web", kubelet)
    first, second, third = api.pods_of("Deployment/web")
    second.net = None  # not yet wired by the CNI
    third.namespace = "elsewhere"
    svc = api.manifests.services["web"]
    assert endpointslice.selected_pods(svc, api.pods.values()) == [first]
    assert endpointslice.target_port("http", first.template) == 8080
    assert endpointslice.target_port("nope", first.template) is None
    assert endpointslice.target_port("9090", first.template) == 9090


# --- apply: a Service's selector and session affinity -------------------------------------------


def _with_web_service(**spec: Any) -> list[dict[str, Any]]:
    docs = _docs()
    web = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "web")
    web["spec"].update(spec)
    return docs


def test_apply_a_selector_typo_empties_the_service_and_the_fix_fills_it_again() -> None:
    api, kubelet = _cluster()
    deployment.reconcile(api, "Deployment/web", kubelet)
    kubelet.ready(*api.pods_of("Deployment/web"))
    slices = endpointslice.EndpointSliceController(api)
    assert len(slices.sync()[0].usable()) == 3
    address = api.cluster_ips[f"{NS}/web"]

    changes = api.apply(parse_documents(_with_web_service(selector={"app": "wbe"})))
    assert changes == ["service/web: selector app=wbe"]
    rule = slices.sync()[0]
    assert rule.endpoints == () and rule.cluster_ip == address  # same address, no pods

    assert api.apply(parse_documents(_docs())) == ["service/web: selector app=web"]
    assert len(slices.sync()[0].usable()) == 3


def test_apply_switches_session_affinity_on_and_off() -> None:
    api, _ = _cluster()
    affinity = {
        "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
    }
    assert api.apply(parse_documents(_with_web_service(**affinity))) == [
        "service/web: sessionAffinity ClientIP (600s)"
    ]
    assert endpointslice.compute(api)[0].affinity_timeout == 600
    assert api.apply(parse_documents(_docs())) == ["service/web: sessionAffinity None"]
    assert endpointslice.compute(api)[0].affinity_timeout is None


@pytest.mark.parametrize(
    "spec",
    [
        {"ports": [{"name": "http", "port": 81, "targetPort": "http"}]},
        {"clusterIP": "10.96.0.99"},
    ],
)
def test_apply_refuses_a_service_whose_ports_or_address_changed(spec: dict[str, Any]) -> None:
    api, _ = _cluster()
    with pytest.raises(ValueError, match="restart the lab"):
        api.apply(parse_documents(_with_web_service(**spec)))
    assert api.manifests.services["web"].ports[0].port == 80  # nothing half-applied
