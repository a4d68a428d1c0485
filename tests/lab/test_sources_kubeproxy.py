"""kube-proxy's view of the API objects: lab/sources/kubeproxy.py. Root-free."""

from __future__ import annotations

from typing import Any

from lab.kubeproxy.model import Endpoint
from lab.sources.kubeproxy import service_port_rules
from tests.lab import apicluster as api

HTTP = [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
CONTAINER_HTTP = [{"name": "http", "containerPort": 8080}]


def _web_cluster() -> Any:
    store = api.cluster()
    api.service(store, "web", HTTP, "web")
    api.pod(store, "web-a", "web", "10.244.1.10", ports=CONTAINER_HTTP)
    api.pod(store, "web-b", "web", "10.244.1.9", ready=False, ports=CONTAINER_HTTP)
    api.pod(store, "web-c", "web", "10.244.1.20", ports=CONTAINER_HTTP)
    api.settle(store)
    return store


def _rules(store: Any) -> dict[str, Any]:
    return {r.port_name: r for r in service_port_rules(*api.services_and_slices(store))}


def test_a_named_target_port_becomes_the_pods_port_with_each_pods_conditions() -> None:
    store = _web_cluster()
    api.terminate(store, "web-c")
    api.settle(store)
    web = _rules(store)["default/web:http"]
    svc = next(s for s in api.listed(store, "services") if s["metadata"]["name"] == "web")
    assert (web.cluster_ip, web.port, web.protocol) == (svc["spec"]["clusterIP"], 80, "TCP")
    # Sorted by address as numbers: .9 before .10.
    # Where each runs: the pod's node, and that Node's zone label.
    at = {"node_name": "lab-node-1", "zone": "lab-zone-a"}
    assert web.endpoints == (
        Endpoint("10.244.1.9", 8080, "web-b", ready=False, serving=False, terminating=False, **at),
        Endpoint("10.244.1.10", 8080, "web-a", ready=True, serving=True, terminating=False, **at),
        Endpoint("10.244.1.20", 8080, "web-c", ready=False, serving=True, terminating=True, **at),
    )
    assert [e.pod for e in web.usable()] == ["web-a"]


def test_a_terminating_endpoint_still_serving_is_used_when_none_is_ready() -> None:
    store = _web_cluster()
    api.terminate(store, "web-a")
    api.terminate(store, "web-c")
    api.settle(store)
    assert [e.pod for e in _rules(store)["default/web:http"].usable()] == ["web-a", "web-c"]


def test_every_service_with_a_cluster_ip_in_namespace_and_name_order_headless_left_out() -> None:
    store = _web_cluster()
    api.service(store, "web-headless", HTTP, "web", clusterIP="None")
    api.service(store, "aaa", [{"name": "x", "port": 1}])  # no selector: no endpoints
    api.settle(store)
    names = [r.port_name for r in service_port_rules(*api.services_and_slices(store))]
    assert names == [
        "default/aaa:x",
        "default/kubernetes:https",
        "default/web:http",
        "kube-system/kube-dns:dns",
        "kube-system/kube-dns:dns-tcp",
        "kube-system/kube-dns:metrics",
    ]
    rules = _rules(store)
    assert rules["default/aaa:x"].endpoints == ()
    # The API server's own slice, written by the bootstrap: no pod behind it.
    (apiserver,) = rules["default/kubernetes:https"].endpoints
    assert (apiserver.ip, apiserver.port, apiserver.pod, apiserver.ready) == (
        "127.0.0.1",
        6443,
        "",
        True,
    )


def test_an_unnamed_port_is_named_by_its_service_alone() -> None:
    store = api.cluster()
    api.service(store, "redis", [{"port": 6379, "targetPort": 6380}], "redis")
    api.pod(store, "redis-0", "redis", "10.244.1.4")
    api.settle(store)
    redis = _rules(store)["default/redis"]
    assert [(e.ip, e.port) for e in redis.endpoints] == [("10.244.1.4", 6380)]


def test_session_affinity_client_ip_and_its_default_timeout() -> None:
    store = api.cluster()
    api.service(store, "none", [{"port": 1}])
    api.service(store, "sticky", [{"port": 1}], sessionAffinity="ClientIP")
    config = {"clientIP": {"timeoutSeconds": 60}}
    api.service(
        store, "short", [{"port": 1}], sessionAffinity="ClientIP", sessionAffinityConfig=config
    )
    rules = _rules(store)
    assert rules["default/none"].affinity_timeout is None
    assert rules["default/sticky"].affinity_timeout == 10800
    assert rules["default/short"].affinity_timeout == 60


# -- slices as other writers may leave them ------------------------------------------------
SVC: dict[str, Any] = {
    "metadata": {"name": "db", "namespace": "default"},
    "spec": {
        "clusterIP": "10.96.5.5",
        "ports": [
            {"name": "sql", "port": 3306, "protocol": "TCP"},
            {"name": "sql", "port": 3306, "protocol": "UDP"},
        ],
    },
}


def _slice(name: str, endpoints: list[dict[str, Any]], **port: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": port.pop("namespace", "default"),
            "labels": {"kubernetes.io/service-name": "db"},
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "sql", "port": 3307, "protocol": "TCP", **port}],
    }


def _tcp(*slices: dict[str, Any]) -> tuple[Endpoint, ...]:
    tcp, _udp = service_port_rules([SVC], list(slices))
    assert tcp.protocol == "TCP"
    return tcp.endpoints


def test_unset_conditions_read_as_kube_proxy_reads_them() -> None:
    (ep,) = _tcp(_slice("db-1", [{"addresses": ["10.244.1.7"]}]))
    assert ep == Endpoint("10.244.1.7", 3307, "", ready=True, serving=True, terminating=False)


def test_the_same_address_in_two_slices_is_one_endpoint() -> None:
    first = {"addresses": ["10.244.1.7"], "conditions": {"ready": True}}
    second = {"addresses": ["10.244.1.7"], "conditions": {"ready": False}}
    (ep,) = _tcp(_slice("db-b", [second]), _slice("db-a", [first]))
    assert ep.ready  # the first slice by name wins


def test_ports_match_by_protocol_and_numberless_or_foreign_slices_are_ignored() -> None:
    endpoint = {"addresses": ["10.244.1.7"]}
    tcp, udp = service_port_rules(
        [SVC],
        [
            _slice("db-udp", [endpoint], protocol="UDP", port=5353),
            _slice("db-none", [{"addresses": ["10.244.1.8"]}], port=None),
            _slice("db-other-ns", [{"addresses": ["10.244.1.9"]}], namespace="other"),
            _slice("db-empty", [{"addresses": []}]),
        ],
    )
    assert tcp.endpoints == ()
    assert [(e.ip, e.port) for e in udp.endpoints] == [("10.244.1.7", 5353)]


# -- traffic policies: where an endpoint runs, its hints, internalTrafficPolicy ------------
def test_node_zone_and_hints_are_read_from_the_slice() -> None:
    raw = {
        "addresses": ["10.244.2.7"],
        "nodeName": "lab-node-2",
        "zone": "lab-zone-b",
        # Duplicates and order do not matter: kube-proxy keeps the names as sets.
        "hints": {
            "forZones": [{"name": "lab-zone-b"}, {"name": "lab-zone-a"}, {"name": "lab-zone-b"}],
            "forNodes": [{"name": "lab-node-2"}],
        },
    }
    (ep,) = _tcp(_slice("db-1", [raw]))
    assert (ep.node_name, ep.zone) == ("lab-node-2", "lab-zone-b")
    assert ep.hints_zones == ("lab-zone-a", "lab-zone-b")
    assert ep.hints_nodes == ("lab-node-2",)


def test_an_endpoint_without_node_zone_or_hints_has_none() -> None:
    (ep,) = _tcp(_slice("db-1", [{"addresses": ["10.244.1.7"], "hints": {}}]))
    assert (ep.node_name, ep.zone, ep.hints_zones, ep.hints_nodes) == ("", "", (), ())


def test_internal_traffic_policy_local_is_read_and_cluster_is_the_default() -> None:
    store = api.cluster()
    api.service(store, "everywhere", [{"port": 1}])
    api.service(store, "here", [{"port": 1}], internalTrafficPolicy="Local")
    rules = _rules(store)
    assert rules["default/here"].internal_traffic_local
    assert not rules["default/everywhere"].internal_traffic_local
