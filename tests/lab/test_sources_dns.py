"""The cluster DNS's view of the API objects: lab/sources/dns.py. Root-free."""

from __future__ import annotations

from typing import Any

from lab import dns
from lab.api.controllers import endpointslice
from lab.dns import DnsEndpoint, DnsPort, DnsService
from lab.sources.dns import dns_services
from tests.lab import apicluster as api

MYSQL = [{"name": "mysql", "port": 3306, "targetPort": "mysql"}]
CONTAINER = {"name": "db", "image": "db:1", "ports": [{"name": "mysql", "containerPort": 3307}]}


def _db(replicas: int = 3, **headless: Any) -> Any:
    """A StatefulSet governed by a headless Service, beside a ClusterIP one; db-1 not ready."""
    store = api.cluster()
    api.service(store, "db", MYSQL, "db")
    api.service(store, "db-headless", MYSQL, "db", clusterIP="None", **headless)
    api.stateful_set(store, "db", replicas, "db-headless", containers=[CONTAINER])
    api.settle(store)
    for ordinal in range(replicas):
        api.start(store, f"db-{ordinal}", f"10.244.1.{20 - ordinal}", ready=ordinal != 1)
    api.settle(store)
    return store


def _by_name(store: Any) -> dict[str, DnsService]:
    return {s.name: s for s in dns_services(*api.services_and_slices(store))}


def test_a_headless_service_has_its_ready_pods_by_hostname_with_their_own_ports() -> None:
    headless = _by_name(_db())["db-headless"]
    port = (DnsPort("mysql", "TCP", 3307),)
    assert headless.cluster_ip is None
    assert headless.ports == (DnsPort("mysql", "TCP", 3306),)
    assert headless.endpoints == (
        DnsEndpoint("10.244.1.18", "db-2", port),
        DnsEndpoint("10.244.1.20", "db-0", port),
    )


def test_the_records_name_each_statefulset_pod_under_its_service() -> None:
    names = dns.records(dns_services(*api.services_and_slices(_db()))).names()
    assert names["db-0.db-headless.default.svc.cluster.local"] == ["10.244.1.20"]
    assert "db-1.db-headless.default.svc.cluster.local" not in names  # not ready
    assert names["db-headless.default.svc.cluster.local"] == ["10.244.1.18", "10.244.1.20"]
    assert names["kube-dns.kube-system.svc.cluster.local"] == ["10.96.0.10"]


def test_a_service_with_a_cluster_ip_has_its_address_and_ports_and_no_endpoints() -> None:
    services = _by_name(_db())
    assert services["db"].cluster_ip is not None
    assert services["db"].endpoints == ()
    assert services["kube-dns"] == DnsService(
        "kube-dns",
        "kube-system",
        "10.96.0.10",
        (DnsPort("dns", "UDP", 53), DnsPort("dns-tcp", "TCP", 53), DnsPort("metrics", "TCP", 9153)),
    )
    assert [(s.namespace, s.name) for s in _by_name(_db()).values()] == [
        ("default", "db"),
        ("default", "db-headless"),
        ("default", "kubernetes"),
        ("kube-system", "kube-dns"),
    ]


def test_publish_not_ready_addresses_publishes_every_pod() -> None:
    headless = _by_name(_db(publishNotReadyAddresses=True))["db-headless"]
    assert [e.hostname for e in headless.endpoints] == ["db-2", "db-1", "db-0"]


def test_a_terminating_pod_leaves_the_answers() -> None:
    store = _db()
    api.terminate(store, "db-0")
    # Only the EndpointSlice controller: the lab's StatefulSet controller would
    # recreate db-0 under the name its terminating pod still holds.
    endpointslice.reconcile(store)
    assert [e.hostname for e in _by_name(store)["db-headless"].endpoints] == ["db-2"]


def test_a_pod_of_another_subdomain_is_answered_by_its_address_alone() -> None:
    store = api.cluster()
    api.service(store, "peers", MYSQL, "db", clusterIP="None")
    spec = {"hostname": "db-x", "subdomain": "elsewhere"}
    api.pod(store, "db-x", "db", "10.244.1.30", ports=CONTAINER["ports"], **spec)
    api.settle(store)
    (endpoint,) = _by_name(store)["peers"].endpoints
    assert endpoint.hostname is None
    names = dns.records(dns_services(*api.services_and_slices(store))).names()
    assert names["10-244-1-30.peers.default.svc.cluster.local"] == ["10.244.1.30"]


def _slice(name: str, endpoint: dict[str, Any], port: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": "peers"},
        },
        "addressType": "IPv4",
        "endpoints": [endpoint],
        "ports": [port],
    }


def test_one_address_in_two_slices_is_one_endpoint_with_both_ports_and_unset_ready_counts() -> None:
    svc = {
        "metadata": {"name": "peers", "namespace": "default"},
        "spec": {
            "clusterIP": "None",
            "ports": [{"name": "a", "port": 1}, {"name": "b", "port": 2}],
        },
    }
    endpoint = {"addresses": ["10.244.1.40"], "hostname": "p0"}
    a = _slice("peers-a", endpoint, {"name": "a", "port": 11, "protocol": "TCP"})
    b = _slice("peers-b", endpoint, {"name": "b", "port": 12, "protocol": "TCP"})
    (peers,) = dns_services([svc], [b, a])
    assert peers.endpoints == (
        DnsEndpoint("10.244.1.40", "p0", (DnsPort("a", "TCP", 11), DnsPort("b", "TCP", 12))),
    )
