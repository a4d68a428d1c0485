"""The kubelet's pod manager reading Pod objects: lab/node/pods.py. Root-free.

The Pods come from lab/api's own controllers (a Deployment's through its ReplicaSet, a
StatefulSet's with its claim and hostname) and the scheduler, so kubelet_pod reads what
the API server really stores.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lab.api.controllers import scheduler
from lab.manifests import ManifestError, Volume
from lab.naming import NODE_NAME
from lab.node.pods import kubelet_pod, pod_path, workload_of
from tests.lab import apicluster as api

DATA_MOUNT = [{"name": "data", "mountPath": "/var/lib/db"}]
CONTAINER = {"name": "db", "image": "db:1", "volumeMounts": DATA_MOUNT}


def _store_with_db() -> Any:
    """A StatefulSet `db` with a claim template `data`, governed by `db-headless`."""
    store = api.cluster()
    body = {
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 2,
            "serviceName": "db-headless",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [CONTAINER]},
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }
    api.create(store, "statefulsets", body, "apps")
    api.settle(store, scheduler)
    return store


def _deployment_pod() -> dict[str, Any]:
    store = api.cluster()
    labels = {"app": "web"}
    template = {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "web", "image": "web:1"}]},
    }
    body = {
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": template},
    }
    api.create(store, "deployments", body, "apps")
    api.settle(store, scheduler)
    (pod,) = api.listed(store, "pods")
    return pod


def test_a_statefulset_pods_claim_becomes_a_volume_and_its_names_an_alias() -> None:
    obj = api.pods_of(_store_with_db(), "default", app="db")[1]
    assert obj["metadata"]["name"] == "db-1"
    assert obj["spec"]["nodeName"] == NODE_NAME  # set by the scheduler, not the template
    before = copy.deepcopy(obj)
    pod = kubelet_pod(obj, "10.244.1.7")
    assert (pod.name, pod.namespace, pod.ip, pod.uid) == (
        "db-1",
        "default",
        "10.244.1.7",
        obj["metadata"]["uid"],
    )
    assert pod.workload == "StatefulSet/db"
    assert pod.ordinal == 1
    # The claim the controller named data-db-1 is the pod's volume `data`, which it mounts.
    assert Volume("data", "persistentVolumeClaim") in pod.template.volumes
    assert pod.template.containers[0].volume_mounts == (("data", "/var/lib/db"),)
    # hostname and subdomain: the name the headless Service's DNS gives it, in /etc/hosts.
    assert pod.hostname_aliases == ["db-1.db-headless.default.svc.cluster.local"]
    assert pod.labels["statefulset.kubernetes.io/pod-name"] == "db-1"
    assert obj == before  # the informer's object is left as it was


def test_a_replicaset_pod_belongs_to_its_deployment() -> None:
    obj = _deployment_pod()
    template_hash = obj["metadata"]["labels"]["pod-template-hash"]
    (owner,) = obj["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"]) == ("ReplicaSet", f"web-{template_hash}")
    assert workload_of(obj) == "Deployment/web"
    pod = kubelet_pod(obj, "10.244.1.8")
    assert (pod.workload, pod.template_hash, pod.ordinal) == ("Deployment/web", template_hash, None)
    assert pod.hostname_aliases == []


def test_owners_other_than_a_replicaset_and_no_owner() -> None:
    def pod(refs: list[dict[str, Any]]) -> dict[str, Any]:
        return {"metadata": {"name": "p", "ownerReferences": refs}}

    assert workload_of(pod([])) == "Pod/p"
    # Only the controller reference counts.
    assert workload_of(pod([{"kind": "ReplicaSet", "name": "x-1"}])) == "Pod/p"
    job = {"kind": "Job", "name": "backup", "controller": True}
    assert workload_of(pod([job])) == "Job/backup"


def test_a_hostname_without_a_subdomain_is_no_alias() -> None:
    store = api.cluster()
    api.pod(store, "solo", "solo", "10.244.1.9", hostname="solo")
    obj = store.get(api.PODS, "default", "solo")
    pod = kubelet_pod(obj, "10.244.1.9")
    assert (pod.workload, pod.hostname_aliases) == ("Pod/solo", [])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"volumes": [{"name": "h", "hostPath": {"path": "/"}}]},
            r"volume h of kind \['hostPath'\] not supported",
        ),
        (
            {
                "containers": [
                    {"name": "c", "image": "i", "ports": [{"containerPort": 9, "protocol": "SCTP"}]}
                ]
            },
            "only TCP and UDP",
        ),
        ({"hostNetwork": True}, "hostNetwork: True is not supported"),
    ],
)
def test_what_the_kubelet_cannot_run_is_refused_naming_the_pod(
    change: dict[str, Any], message: str
) -> None:
    obj = _deployment_pod()
    obj["spec"].update(change)
    with pytest.raises(ManifestError, match=message) as caught:
        kubelet_pod(obj, "10.244.1.8")
    assert f"pod default/{obj['metadata']['name']}" in str(caught.value)


def test_the_pod_path_the_status_is_written_to() -> None:
    assert pod_path("ns", "web-1") == "/api/v1/namespaces/ns/pods/web-1"
