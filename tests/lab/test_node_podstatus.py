"""A pod's status as the kubelet's status manager writes it: lab/node/podstatus.py. Root-free.

From the kubelet's own Pod (lab/node/pods.kubelet_pod of a Pod object) to the status
the API server stores; the last test has lab/api's EndpointSlice controller read it.
"""

from __future__ import annotations

from typing import Any

from lab.api.controllers import endpointslice
from lab.kubelet import ContainerState, Pod
from lab.naming import NODE_GATEWAY
from lab.network import PodNetwork
from lab.node.pods import kubelet_pod
from lab.node.podstatus import status_of
from tests.lab import apicluster as api

CREATED = 1_700_000_000.0  # 2023-11-14T22:13:20Z
STAMP = "2023-11-14T22:13:20Z"
INIT = {"name": "migrate", "image": "app:1", "command": ["true"]}
CONTAINERS = [
    {"name": "app", "image": "app:1", "ports": [{"name": "http", "containerPort": 8000}]},
    {"name": "sidecar", "image": "side:2"},
]


def _pod(inits: bool = False) -> Pod:
    spec: dict[str, Any] = {"containers": CONTAINERS}
    if inits:
        spec["initContainers"] = [INIT]
    obj = {"metadata": {"name": "web-0", "namespace": "default", "uid": "u-1"}, "spec": spec}
    pod = kubelet_pod(obj, "10.244.1.5")
    pod.created_at = CREATED
    return pod


def _started(pod: Pod, ready: bool = True) -> Pod:
    """The sandbox and network up, every container running, passing readiness or not."""
    pod.net = PodNetwork(pod.name, pod.ip, pod.netns, "cipweb0")
    pod.phase, pod.init_done = "Running", True
    pod.containers = {
        c.name: ContainerState(
            c.name, state="running", reason="", started=True, ready=ready, started_at=CREATED + 5
        )
        for c in pod.template.containers
    }
    return pod


def _conditions(status: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {c["type"]: (c["status"], c.get("reason")) for c in status["conditions"]}


def test_a_pod_being_set_up_is_pending_with_no_address() -> None:
    pod = _pod()
    pod.containers = {c.name: ContainerState(c.name) for c in pod.template.containers}
    status = status_of(pod)
    assert status["phase"] == "Pending"
    assert "podIP" not in status and "podIPs" not in status
    assert _conditions(status) == {
        "PodReadyToStartContainers": ("False", None),
        "Initialized": ("False", "ContainersNotInitialized"),
        "Ready": ("False", "ContainersNotReady"),
        "ContainersReady": ("False", "ContainersNotReady"),
        "PodScheduled": ("True", None),
    }
    assert [(c["name"], c["image"], c["state"]) for c in status["containerStatuses"]] == [
        ("app", "app:1", {"waiting": {"reason": "ContainerCreating"}}),
        ("sidecar", "side:2", {"waiting": {"reason": "ContainerCreating"}}),
    ]
    assert not any(c["ready"] or c["started"] for c in status["containerStatuses"])
    assert "initContainerStatuses" not in status


def test_a_running_ready_pod_has_its_address_every_condition_and_when() -> None:
    status = status_of(_started(_pod()))
    assert status["phase"] == "Running"
    assert (status["podIP"], status["podIPs"]) == ("10.244.1.5", [{"ip": "10.244.1.5"}])
    assert (status["hostIP"], status["hostIPs"]) == (str(NODE_GATEWAY), [{"ip": str(NODE_GATEWAY)}])
    assert status["startTime"] == STAMP
    assert set(_conditions(status).values()) == {("True", None)}
    assert {c["lastTransitionTime"] for c in status["conditions"]} == {STAMP}
    app = status["containerStatuses"][0]
    assert app["state"] == {"running": {"startedAt": "2023-11-14T22:13:25Z"}}
    assert (app["ready"], app["started"], app["restartCount"]) == (True, True, 0)


def test_one_container_failing_readiness_makes_the_pod_not_ready() -> None:
    pod = _started(_pod())
    pod.containers["sidecar"].ready = False
    conditions = _conditions(status_of(pod))
    assert conditions["Ready"] == ("False", "ContainersNotReady")
    assert conditions["ContainersReady"] == ("False", "ContainersNotReady")
    assert conditions["Initialized"] == ("True", None)
    assert conditions["PodReadyToStartContainers"] == ("True", None)


def test_a_terminating_pod_still_serving_stays_ready() -> None:
    """The kubelet reports what its probes say; the EndpointSlice controller, not the
    status, makes a terminating endpoint not ready (from the deletionTimestamp)."""
    pod = _started(_pod())
    pod.deleting = True
    assert _conditions(status_of(pod))["Ready"] == ("True", None)


def test_a_crashed_container_with_its_exit_code_and_restarts() -> None:
    pod = _started(_pod())
    app = pod.containers["app"]
    app.state, app.reason, app.exit_code, app.restart_count = "terminated", "Error", 3, 2
    app.ready, app.finished_at = False, CREATED + 65
    app_status = status_of(pod)["containerStatuses"][0]
    assert app_status["state"] == {
        "terminated": {
            "exitCode": 3,
            "reason": "Error",
            "startedAt": "2023-11-14T22:13:25Z",
            "finishedAt": "2023-11-14T22:14:25Z",
        }
    }
    assert (app_status["ready"], app_status["started"], app_status["restartCount"]) == (
        False,
        False,
        2,
    )
    app.state, app.reason = "waiting", "CrashLoopBackOff"
    assert status_of(pod)["containerStatuses"][0]["state"] == {
        "waiting": {"reason": "CrashLoopBackOff"}
    }


def test_init_containers_have_their_own_statuses() -> None:
    pod = _pod(inits=True)
    pod.inits = {"migrate": ContainerState("migrate", init=True, state="running", reason="")}
    status = status_of(pod)
    (init,) = status["initContainerStatuses"]
    assert (init["name"], init["image"], "running" in init["state"]) == ("migrate", "app:1", True)
    assert _conditions(status)["Initialized"] == ("False", "ContainersNotInitialized")


def test_the_endpointslice_controller_reads_the_ready_it_writes() -> None:
    store = api.cluster()
    api.service(store, "web", [{"name": "http", "port": 80, "targetPort": "http"}], "web")
    api.create(
        store,
        "pods",
        {
            "metadata": {"name": "web-0", "labels": {"app": "web"}},
            "spec": {"containers": CONTAINERS},
        },
    )
    obj = store.get(api.PODS, "default", "web-0")
    pod = _started(kubelet_pod(obj, "10.244.1.5"))

    def endpoint_after(write: Pod) -> dict[str, Any]:
        current = store.get(api.PODS, "default", "web-0")
        current["status"] = status_of(write)
        store.update(api.PODS, current, "status")
        endpointslice.reconcile(store)
        (slice_,) = [
            s
            for s in api.listed(store, "endpointslices", "discovery.k8s.io")
            if s["metadata"]["labels"].get("kubernetes.io/service-name") == "web"
        ]
        (endpoint,) = slice_["endpoints"]
        assert slice_["ports"][0]["port"] == 8000
        return endpoint

    ready = endpoint_after(pod)
    assert (ready["addresses"], ready["conditions"]["ready"]) == (["10.244.1.5"], True)
    pod.containers["app"].ready = False
    assert endpoint_after(pod)["conditions"]["ready"] is False
