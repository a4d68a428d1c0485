"""A lab API store with the objects its controllers make, for the translation tests.

The Services, Pods and EndpointSlices come from lab/api itself (admission, the
bootstrap objects, the controllers run until they settle), so the tests read the
shapes the API server really stores; the kubelet's part (a pod's address, its
Ready condition, graceful deletion) is done by hand, or for the app's own k8s/ by
tests/lab/fakes.py's FakeKubelet.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from lab.api import admission, bootstrap, verbs
from lab.api.controllers import deployment, endpointslice, replicaset, scheduler, statefulset
from lab.api.resources import by_kind, lookup
from lab.api.routes import Target
from lab.api.storage import Obj, Store
from lab.node.dnsfiles import DnsFiles
from tests.lab.fakes import FakeKubelet

PODS = lookup("", "v1", "pods")
SERVICES = lookup("", "v1", "services")
SLICES = lookup("discovery.k8s.io", "v1", "endpointslices")
NAMESPACES = lookup("", "v1", "namespaces")
SECRETS = lookup("", "v1", "secrets")
assert PODS and SERVICES and SLICES and NAMESPACES and SECRETS


def cluster() -> Store:
    store = Store()
    bootstrap.populate(store, 6443)
    return store


def settle(store: Store, *more: Any) -> None:
    """Run the controllers (and any of `more`, e.g. the scheduler) until nothing changes."""
    for _ in range(10):
        before = store.revision
        for controller in (deployment, replicaset, statefulset, endpointslice, *more):
            controller.reconcile(store)
        if store.revision == before:
            return
    raise AssertionError("the controllers did not settle")


def create(store: Store, plural: str, body: Obj, group: str = "") -> Obj:
    """Create an object through admission, as the API server's POST does."""
    resource = lookup(group, "v1", plural)
    assert resource
    body = {
        "apiVersion": f"{group}/v1" if group else "v1",
        "kind": resource.kind,
        **body,
        "metadata": {"namespace": "default", **body["metadata"]},
    }
    return store.create(resource, admission.default(store, resource, body))


def service(
    store: Store, name: str, ports: list[dict[str, Any]], selector: str = "", **spec: Any
) -> Obj:
    body: Obj = {"metadata": {"name": name}, "spec": {"ports": ports, **spec}}
    if selector:
        body["spec"]["selector"] = {"app": selector}
    return create(store, "services", body)


def pod(
    store: Store,
    name: str,
    app: str,
    ip: str,
    ready: bool = True,
    ports: list[dict[str, Any]] | None = None,
    namespace: str = "default",
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> Obj:
    """A pod the kubelet has started: an address, Running, Ready or not."""
    container = {"name": "main", "image": "app:1", "ports": ports or []}
    body = {
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": app}},
        "spec": {"containers": [container], "nodeName": "lab-node-1", **spec},
    }
    create(store, "pods", body)
    return start(store, name, ip, ready, namespace)


def start(store: Store, name: str, ip: str, ready: bool = True, namespace: str = "default") -> Obj:
    """What the kubelet reports of a pod it runs: an address, Running, Ready or not."""
    condition = {"type": "Ready", "status": "True" if ready else "False"}
    current = store.get(PODS, namespace, name)
    current["status"] = {"phase": "Running", "podIP": ip, "conditions": [condition]}
    return store.update(PODS, current, "status")


def stateful_set(store: Store, name: str, replicas: int, service_name: str, **pod: Any) -> Obj:
    labels = {"app": name}
    body = {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": service_name,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
    return create(store, "statefulsets", body, "apps")


def terminate(store: Store, name: str, namespace: str = "default") -> None:
    """A graceful delete under way: the pod stays, with its deletionTimestamp."""
    store.mark_deleting(PODS, namespace, name)


def listed(store: Store, plural: str, group: str = "") -> list[Obj]:
    resource = lookup(group, "v1", plural)
    assert resource
    return store.list(resource)[0]


def services_and_slices(store: Store) -> tuple[list[Obj], list[Obj]]:
    return listed(store, "services"), listed(store, "endpointslices", "discovery.k8s.io")


def service_object(store: Store, namespace: str, name: str) -> Obj:
    return store.get(SERVICES, namespace, name)


def apply(store: Store, docs: list[Obj]) -> None:
    """Create each document as the API server's POST does: `kubectl apply` of new objects
    (strict field validation, as kubectl asks for by default)."""
    for doc in docs:
        resource = by_kind(doc["apiVersion"], doc["kind"])
        assert resource, f"{doc['apiVersion']} {doc['kind']}"
        namespace = doc["metadata"].get("namespace") if resource.namespaced else None
        target = Target(resource, namespace)
        verbs.create(store, target, json.dumps(doc).encode(), {"fieldValidation": "Strict"})


def running_app(rendered: str, dns_dir: Path) -> tuple[Store, FakeKubelet]:
    """The rendered k8s/ applied to a new cluster with its DNS add-on, every pod bound to
    the node and started, running and ready: the API objects after `sudo make lab`."""
    store = cluster()
    apply(store, [d for d in yaml.safe_load_all(rendered) if d])
    apply(store, DnsFiles(dns_dir).addon())  # type: ignore[arg-type]
    kubelet = FakeKubelet(store)
    settle(store, scheduler)
    while kubelet.run_pods():
        settle(store, scheduler)
    return store, kubelet


def pod_ip(store: Store, name: str, namespace: str) -> str:
    return str(store.get(PODS, namespace, name)["status"]["podIP"])


def pods_of(store: Store, namespace: str, **labels: str) -> list[Obj]:
    """The pods of a namespace with these labels, by name."""
    return [
        p
        for p in store.list(PODS, namespace)[0]
        if labels.items() <= (p["metadata"].get("labels") or {}).items()
    ]
