"""Events as the controllers record them (reason, message, the object involved), so
`kubectl describe` and `kubectl get events` show what a cluster would."""

from __future__ import annotations

import secrets

from lab.api.resources import lookup
from lab.api.storage import Obj, Store, now

EVENTS = lookup("", "v1", "events")
assert EVENTS


def record(
    store: Store,
    involved: Obj,
    reason: str,
    message: str,
    component: str,
    kind: str = "Normal",
) -> None:
    meta = involved["metadata"]
    stamp = now()
    store.create(
        EVENTS,
        {
            "metadata": {
                # kube names an event after its object and a hex timestamp-like suffix.
                "name": f"{meta['name']}.{secrets.token_hex(8)}",
                "namespace": meta.get("namespace", "default"),
            },
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": meta["name"],
                "namespace": meta.get("namespace", ""),
                "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "source": {"component": component},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "type": kind,
            "reportingComponent": component,
            "reportingInstance": "",
        },
    )
