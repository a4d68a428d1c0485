"""The kubelet's service-link variables from the Service objects: lab/sources/envvars.py."""

from __future__ import annotations

from typing import Any

from lab.sources.envvars import service_env
from tests.lab import apicluster as api

HTTP = [{"name": "http", "port": 8000, "targetPort": 8000}]


def _store() -> Any:
    store = api.cluster()
    for namespace in ("app", "other"):
        api.create(store, "namespaces", {"metadata": {"name": namespace}})
    backend = {"metadata": {"name": "backend", "namespace": "app"}, "spec": {"ports": HTTP}}
    api.create(store, "services", backend)
    headless = {"clusterIP": "None", "ports": [{"port": 3306}]}
    api.create(
        store, "services", {"metadata": {"name": "db", "namespace": "app"}, "spec": headless}
    )
    elsewhere = {"metadata": {"name": "elsewhere", "namespace": "other"}, "spec": {"ports": HTTP}}
    api.create(store, "services", elsewhere)
    return store


def _ip(store: Any, namespace: str, name: str) -> str:
    return str(api.service_object(store, namespace, name)["spec"]["clusterIP"])


def test_a_pod_sees_its_namespaces_services_and_the_api_servers() -> None:
    store = _store()
    env = service_env(api.listed(store, "services"), "app")
    backend = _ip(store, "app", "backend")
    assert env["BACKEND_SERVICE_HOST"] == backend
    assert env["BACKEND_SERVICE_PORT_HTTP"] == "8000"
    assert env["BACKEND_PORT_8000_TCP"] == f"tcp://{backend}:8000"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["KUBERNETES_PORT_443_TCP_ADDR"] == "10.96.0.1"
    # Headless, another namespace's, the DNS's: none of them.
    prefixes = {name.split("_")[0] for name in env}
    assert prefixes == {"BACKEND", "KUBERNETES"}


def test_without_service_links_only_the_api_server_is_there() -> None:
    env = service_env(api.listed(_store(), "services"), "app", enable_service_links=False)
    assert env
    assert all(name.startswith("KUBERNETES_") for name in env)


def test_a_kubernetes_service_of_the_pods_own_namespace_replaces_the_api_servers() -> None:
    store = _store()
    own = {"metadata": {"name": "kubernetes", "namespace": "app"}, "spec": {"ports": HTTP}}
    api.create(store, "services", own)
    env = service_env(api.listed(store, "services"), "app")
    assert env["KUBERNETES_SERVICE_HOST"] == _ip(store, "app", "kubernetes") != "10.96.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "8000"


def test_variable_names_as_the_kubelet_makes_them() -> None:
    svc = {
        "metadata": {"name": "web-front", "namespace": "app"},
        "spec": {"clusterIP": "10.96.7.7", "ports": [{"name": "8080-http", "port": 80}]},
    }
    env = service_env([svc], "app")
    assert env["WEB_FRONT_SERVICE_PORT__8080_HTTP"] == "80"
    assert env["WEB_FRONT_PORT_80_TCP_PROTO"] == "tcp"
