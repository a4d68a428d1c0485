"""The app's k8s/ manifests in both of the lab's models, with the same pods.

The old model (lab/apiserver.py's ApiServer, its controllers and a fake kubelet)
runs the app's workloads; the same pods (names, labels, addresses, templates,
readiness, a graceful deletion) are then written as Pod objects into a lab/api
store beside the manifests' objects, and the API's EndpointSlice controller
runs on them. What lab/sources reads from the store can then be compared with
what the old controllers computed from the old model.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import yaml

from lab import manifests
from lab.api.controllers import endpointslice
from lab.api.storage import Store
from lab.apiserver import ApiServer
from lab.controllers import deployment, statefulset
from tests.lab import apicluster as api
from tests.lab.fakes import FakeKubelet

# kind → (plural, group) of the manifests' objects the node components read.
STORED = {
    "Namespace": ("namespaces", ""),
    "ConfigMap": ("configmaps", ""),
    "Secret": ("secrets", ""),
    "Service": ("services", ""),
    "NetworkPolicy": ("networkpolicies", "networking.k8s.io"),
}


@cache
def _docs() -> tuple[dict[str, Any], ...]:
    return tuple(d for d in yaml.safe_load_all(manifests.render()) if d)


def docs() -> list[dict[str, Any]]:
    return copy.deepcopy(list(_docs()))


def old_model() -> ApiServer:
    """The app running: every pod started and ready, then one not ready and one terminating."""
    old = ApiServer(manifests.parse_documents(docs()), print_events=False, seed=1)
    old.allocate_service_ips()
    kubelet = FakeKubelet(old)
    for _ in range(5):  # a StatefulSet starts its pods one at a time
        for key, workload in old.workloads.items():
            controller = deployment if workload.kind == "Deployment" else statefulset
            controller.reconcile(old, key, kubelet)
        kubelet.ready(*old.pods.values())
    backends = sorted(
        p.name for p in old.pods.values() if p.labels.get("app.kubernetes.io/name") == "backend"
    )
    unready = old.pods[backends[0]]
    next(iter(unready.containers.values())).ready = False
    kubelet.delete_pod(old.pods[backends[1]])
    return old


def new_model(old: ApiServer) -> Store:
    """The manifests' objects and the old model's pods, as the API server stores them."""
    store = api.cluster()
    for doc in docs():
        if doc["kind"] in STORED:
            api.create(store, *STORED[doc["kind"]][:1], doc, STORED[doc["kind"]][1])
    for pod in old.pods.values():
        spec = copy.deepcopy(pod.template.raw.get("spec") or {})
        if pod.workload.kind == "StatefulSet":
            spec.update(hostname=pod.name, subdomain=pod.workload.service_name)
        body = {"metadata": {"name": pod.name, "namespace": pod.namespace, "labels": pod.labels}}
        api.create(store, "pods", {**body, "spec": spec})
        api.start(store, pod.name, pod.ip, pod.serving, pod.namespace)
        if pod.deleting:
            api.terminate(store, pod.name, pod.namespace)
    endpointslice.reconcile(store)
    return store
