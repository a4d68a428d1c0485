"""The lab's API server over HTTPS, as a client library sees it: Status bodies, the token,
optimistic concurrency, watches, Table answers, patch content types. Root-free."""

from __future__ import annotations

import json
import ssl
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lab.api.resources import lookup
from lab.api.server import InThread, Running
from lab.api.storage import HISTORY, Store

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


@pytest.fixture(scope="module")
def thread(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InThread]:
    running = InThread(tmp_path_factory.mktemp("apiserver-http"))
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def server(thread: InThread) -> Running:
    assert thread.running
    return thread.running


@pytest.fixture(scope="module")
def client(server: Running) -> Iterator[httpx.Client]:
    with tempfile.NamedTemporaryFile("wb", suffix=".pem") as ca:
        ca.write(server.credentials.ca_pem)
        ca.flush()
        context = ssl.create_default_context(cafile=ca.name)
    headers = {"Authorization": f"Bearer {server.credentials.token}"}
    with httpx.Client(base_url=server.url, verify=context, headers=headers, timeout=10) as http:
        yield http


def _cm(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "1"}}


CMS = "/api/v1/namespaces/default/configmaps"


def test_only_loopback_with_a_certificate_from_its_own_ca(
    server: Running, client: httpx.Client
) -> None:
    assert server.url.startswith("https://127.0.0.1:")
    assert client.get("/version").json()["gitVersion"] == "v1.33.0"


def test_without_the_token_a_401_status(server: Running, client: httpx.Client) -> None:
    answer = client.get("/api/v1/pods", headers={"Authorization": ""})
    assert answer.status_code == 401
    status = answer.json()
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "Unauthorized", 401)


def test_create_then_a_stale_update_is_a_409_status(client: httpx.Client) -> None:
    created = client.post(CMS, json=_cm("stale"))
    assert created.status_code == 201
    first = created.json()
    assert client.put(f"{CMS}/stale", json=dict(first, data={"k": "2"})).status_code == 200
    conflict = client.put(f"{CMS}/stale", json=dict(first, data={"k": "3"}))
    assert conflict.status_code == 409
    assert conflict.json()["reason"] == "Conflict"
    assert client.get(f"{CMS}/stale").json()["data"] == {"k": "2"}


def test_missing_objects_and_paths_are_404_statuses(client: httpx.Client) -> None:
    answer = client.get(f"{CMS}/nothing-here")
    assert answer.status_code == 404
    assert answer.json()["message"] == 'configmaps "nothing-here" not found'
    assert client.get("/apis/nosuch.group/v1/things").status_code == 404


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json-patch+json", [{"op": "replace", "path": "/data/k", "value": "9"}]),
        ("application/merge-patch+json", {"data": {"k": "9"}}),
        ("application/strategic-merge-patch+json", {"data": {"k": "9"}}),
    ],
)
def test_the_three_patch_types(client: httpx.Client, content_type: str, body: Any) -> None:
    name = f"patched-{content_type.split('/')[1].split('+')[0]}"
    client.post(CMS, json=_cm(name))
    answer = client.patch(
        f"{CMS}/{name}", content=json.dumps(body), headers={"Content-Type": content_type}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"] == {"k": "9"}


def test_a_table_when_asked_for_one(client: httpx.Client) -> None:
    table = client.get("/api/v1/namespaces", headers={"Accept": TABLE}).json()
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Status", "Age"]
    assert ["default", "Active"] in [row["cells"][:2] for row in table["rows"]]


def test_watch_streams_events_after_a_resource_version(client: httpx.Client) -> None:
    listed = client.get(CMS).json()
    since = listed["metadata"]["resourceVersion"]
    client.post(CMS, json=_cm("watched"))
    client.delete(f"{CMS}/watched")
    params = {"watch": "true", "resourceVersion": since, "timeoutSeconds": "1"}
    with client.stream("GET", CMS, params=params) as stream:
        lines = [json.loads(line) for line in stream.iter_lines() if line]
    names = [(e["type"], e["object"]["metadata"]["name"]) for e in lines]
    assert names == [("ADDED", "watched"), ("DELETED", "watched")]


def test_a_watch_from_a_forgotten_version_is_410_gone(
    thread: InThread, client: httpx.Client
) -> None:
    configmaps = lookup("", "v1", "configmaps")

    def churn(store: Store) -> None:  # more changes than the server keeps for watches
        for number in range(HISTORY + 10):
            store.create(
                configmaps, {"metadata": {"name": f"churn-{number}", "namespace": "kube-public"}}
            )

    assert thread.running
    thread.call(churn, thread.running.store)
    answer = client.get(CMS, params={"watch": "true", "resourceVersion": "1"})
    assert answer.status_code == 410
    assert answer.json()["reason"] == "Expired"


def test_scale_subresource(client: httpx.Client) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "scaled"},
        "spec": {
            "selector": {"matchLabels": {"app": "s"}},
            "template": {
                "metadata": {"labels": {"app": "s"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
    }
    assert (
        client.post("/apis/apps/v1/namespaces/default/deployments", json=deployment).status_code
        == 201
    )
    path = "/apis/apps/v1/namespaces/default/deployments/scaled/scale"
    patched = client.patch(
        path,
        content='{"spec":{"replicas":4}}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patched.json()["kind"] == "Scale" and patched.json()["spec"]["replicas"] == 4
    assert (
        client.get("/apis/apps/v1/namespaces/default/deployments/scaled").json()["spec"]["replicas"]
        == 4
    )


def test_the_state_file_is_private(server: Running) -> None:
    state = Path(server.workdir) / "apiserver.json"
    assert state.stat().st_mode & 0o077 == 0
    assert (Path(server.workdir) / "apiserver.key").stat().st_mode & 0o077 == 0


def _wait(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        time.sleep(0.05)


def test_eviction_honours_the_disruption_budget(client: httpx.Client) -> None:
    pods = "/api/v1/namespaces/default/pods"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "guarded", "labels": {"app": "guarded"}},
        # Bound already, as a running pod is: the scheduler leaves it be.
        "spec": {"nodeName": "lab-node-1", "containers": [{"name": "c", "image": "i"}]},
    }
    created = client.post(pods, json=pod).json()
    created["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    assert client.put(f"{pods}/guarded/status", json=created).status_code == 200
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "guarded"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}},
    }
    budgets = "/apis/policy/v1/namespaces/default/poddisruptionbudgets"
    assert client.post(budgets, json=budget).status_code == 201
    _wait(
        lambda: (
            (client.get(f"{budgets}/guarded").json().get("status") or {}).get("currentHealthy") == 1
        )
    )
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "guarded"}}
    refused = client.post(f"{pods}/guarded/eviction", json=eviction)
    assert refused.status_code == 429
    assert (
        refused.json()["message"]
        == "Cannot evict pod as it would violate the pod's disruption budget."
    )
    client.delete(f"{budgets}/guarded")
    allowed = client.post(f"{pods}/guarded/eviction", json=eviction)
    assert allowed.status_code == 201 and allowed.json()["status"] == "Success"
    assert client.get(f"{pods}/guarded").status_code == 404


def test_discovery_lists_the_eviction_subresource(client: httpx.Client) -> None:
    resources = {r["name"]: r for r in client.get("/api/v1").json()["resources"]}
    assert resources["pods/eviction"]["verbs"] == ["create"]
    assert (resources["pods/eviction"]["group"], resources["pods/eviction"]["kind"]) == (
        "policy",
        "Eviction",
    )
    apps = {r["name"]: r for r in client.get("/apis/apps/v1").json()["resources"]}
    assert apps["deployments/scale"]["kind"] == "Scale"
    assert client.get("/apis/apps/v1").json()["groupVersion"] == "apps/v1"


def test_creating_a_namespaced_kind_outside_a_namespace_is_405(client: httpx.Client) -> None:
    answer = client.post("/api/v1/configmaps", json=_cm("nowhere"))
    assert answer.status_code == 405 and answer.json()["reason"] == "MethodNotAllowed"


def test_a_body_that_is_not_json_is_a_400(client: httpx.Client) -> None:
    answer = client.post(CMS, content=b"{not json", headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and "not JSON" in answer.json()["message"]


def test_every_namespace_has_the_root_ca_configmap(server: Running, client: httpx.Client) -> None:
    path = "/api/v1/namespaces/kube-public/configmaps/kube-root-ca.crt"
    _wait(lambda: client.get(path).status_code == 200)
    assert client.get(path).json()["data"] == {"ca.crt": server.credentials.ca_pem.decode()}
