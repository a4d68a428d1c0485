"""A running pod's status as the kubelet's status manager writes it to the API server.

Pure: from the kubelet's own view of the pod (lab/kubelet.py `Pod`) to the `status`
of the Pod object: phase, IPs, the four conditions, and each container's state. The
EndpointSlice controller reads Ready from here; `kubectl get pods` prints it.
"""

from __future__ import annotations

import datetime
from typing import Any

from lab.kubelet import ContainerState, Pod

Obj = dict[str, Any]


def _stamp(at: float | None) -> str | None:
    if at is None:
        return None
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(kind: str, true: bool, since: str | None, reason: str | None = None) -> Obj:
    condition: Obj = {"type": kind, "status": "True" if true else "False"}
    if since is not None:
        condition["lastTransitionTime"] = since
    if reason and not true:
        condition["reason"] = reason
    return condition


def _state(state: ContainerState) -> Obj:
    if state.state == "running":
        return {"running": {"startedAt": _stamp(state.started_at)}}
    if state.state == "terminated":
        terminated: Obj = {"exitCode": state.exit_code or 0, "reason": state.reason or "Error"}
        # Without them kubectl describe prints the zero time (0001-01-01) as Started/Finished.
        for key, at in (("startedAt", state.started_at), ("finishedAt", state.finished_at)):
            if at is not None:
                terminated[key] = _stamp(at)
        return {"terminated": terminated}
    return {"waiting": {"reason": state.reason or "ContainerCreating"}}


def _container(state: ContainerState, images: dict[str, str]) -> Obj:
    return {
        "name": state.name,
        "image": images.get(state.name, ""),
        "imageID": "",
        "ready": state.ready,
        "started": state.started if state.state == "running" else False,
        "restartCount": state.restart_count,
        "state": _state(state),
    }


def status_of(pod: Pod) -> Obj:
    images = {c.name: c.image for c in pod.template.all_containers()}
    since = _stamp(pod.created_at)
    containers_ready = pod.serving
    status: Obj = {
        "phase": pod.phase,
        "hostIP": pod.host_ip,
        "hostIPs": [{"ip": pod.host_ip}],
        "startTime": since,
        "qosClass": "Burstable",
        "conditions": [
            _condition("PodReadyToStartContainers", pod.net is not None, since),
            _condition("Initialized", pod.init_done, since, "ContainersNotInitialized"),
            _condition("Ready", containers_ready, since, "ContainersNotReady"),
            _condition("ContainersReady", containers_ready, since, "ContainersNotReady"),
            _condition("PodScheduled", True, since),
        ],
        "containerStatuses": [_container(s, images) for s in pod.containers.values()],
    }
    if pod.net is not None:
        status["podIP"] = pod.ip
        status["podIPs"] = [{"ip": pod.ip}]
    if pod.inits:
        status["initContainerStatuses"] = [_container(s, images) for s in pod.inits.values()]
    return status
