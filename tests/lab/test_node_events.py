"""The kubelet's events on the API server: lab/node/events.py. Root-free.

The pod worker's own reasons are mapped to a kubelet's (with the type it gives each) and
the Event is created through lab/api's create verb, as the node's client posts it, then
found as `kubectl describe pod` looks for it (a field selector on involvedObject).
"""

from __future__ import annotations

import json

from lab.api import routes, verbs
from lab.api.resources import lookup
from lab.api.selectors import field_matcher
from lab.naming import NODE_NAME
from lab.node.events import kubelet_event
from tests.lab import apicluster as api


def test_a_kubelets_reasons_with_their_types_and_lab_only_ones_not_posted() -> None:
    killing = kubelet_event("demo", "web-0", "u-1", "Killing", "deleting pod (grace 30s)")
    assert killing is not None
    assert (killing["reason"], killing["type"]) == ("Killing", "Normal")
    assert killing["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "web-0",
        "namespace": "demo",
        "uid": "u-1",
    }
    assert killing["source"] == {"component": "kubelet", "host": NODE_NAME}
    assert killing["metadata"]["name"].startswith("web-0.")
    unready = kubelet_event("demo", "web-0", "u-1", "Unready", "app readiness: 503")
    assert unready is not None and (unready["reason"], unready["type"]) == ("Unhealthy", "Warning")
    back_off = kubelet_event("demo", "web-0", "u-1", "BackOff", "restarting app in 10s")
    assert back_off is not None and back_off["type"] == "Warning"
    # Said in the lab's log only: a kubelet has no such events (or the scheduler records it).
    for reason in ("Ready", "PreStop", "Deleted", "Exited", "Scheduled"):
        assert kubelet_event("demo", "web-0", "u-1", reason, "x") is None


def test_the_event_is_stored_and_found_by_the_pod_it_is_about() -> None:
    store = api.cluster()
    for pod, reason in (("web-0", "Started"), ("web-0", "Killing"), ("web-1", "Started")):
        event = kubelet_event("default", pod, f"uid-{pod}", reason, f"{reason} of {pod}")
        _, _, target = routes.parse("/api/v1/namespaces/default/events")
        assert target is not None
        verbs.create(store, target, json.dumps(event).encode(), {})
    events = lookup("", "v1", "events")
    assert events is not None
    about = field_matcher("involvedObject.name=web-0,involvedObject.kind=Pod", "Event")
    found, _ = store.list(events, "default", about)
    assert sorted(e["reason"] for e in found) == ["Killing", "Started"]
    assert {e["message"] for e in found} == {"Started of web-0", "Killing of web-0"}


def test_pulled_and_created_are_a_kubelets_normal_events_and_not_printed() -> None:
    from lab.node.events import QUIET

    for reason in ("Pulled", "Created"):
        event = kubelet_event("ns", "web-0", "uid-1", reason, "message")
        assert event is not None and (event["reason"], event["type"]) == (reason, "Normal")
        assert reason in QUIET
    assert "Started" not in QUIET
