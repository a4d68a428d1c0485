"""A node's heartbeat: its Lease in kube-node-lease, renewed by whoever runs the node.

As the kubelet does (every RENEW_EVERY seconds, call renew(store, node)): the Lease is named
after the node, held by it, owned by its Node object (so it goes with the node), and
its renewTime is what the node-lifecycle controller reads to tell a live node from a
silent one.
"""

from __future__ import annotations

import datetime

from lab.api.resources import lookup
from lab.api.storage import Obj, Store

LEASES = lookup("coordination.k8s.io", "v1", "leases")
NODES = lookup("", "v1", "nodes")
assert LEASES and NODES
NAMESPACE = "kube-node-lease"
# The kubelet's lease duration, as it writes it (it renews every quarter of it, 10 s).
DURATION = 40
# How often the lab's nodes renew: the lab's node-monitor grace is 8 s, not 40 s
# (lab/api/controllers/nodelifecycle.py), so a 10 s renewal would look like a dead node.
RENEW_EVERY = 2.0


def micro_time(at: datetime.datetime) -> str:
    """A MicroTime, as renewTime is written (microseconds, UTC)."""
    return at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime.datetime:
    """A Time or MicroTime (`…Z`, with or without fractions) as an aware datetime."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def renewed_at(lease: Obj) -> datetime.datetime | None:
    renew = (lease.get("spec") or {}).get("renewTime")
    return parse_time(renew) if renew else None


def renew(store: Store, node: str, at: datetime.datetime | None = None) -> Obj:
    """Create or renew node's Lease, as its kubelet's heartbeat; `at` defaults to now."""
    stamp = micro_time(at or datetime.datetime.now(datetime.UTC))
    current = store.find(LEASES, NAMESPACE, node)
    if current is not None:
        current["spec"]["renewTime"] = stamp
        return store.update(LEASES, current)
    owner = store.get(NODES, "", node)
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": node,
            "namespace": NAMESPACE,
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "name": node,
                    "uid": owner["metadata"]["uid"],
                }
            ],
        },
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": DURATION,
            "renewTime": stamp,
        },
    }
    return store.create(LEASES, lease)
