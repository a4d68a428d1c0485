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
# How often the lab's nodes renew: the lab's node-monitor grace is 8 s, not 50 s
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


# Where the nodes' Leases are, for a client of the API server (the node side's kubelet):
# a new Lease is POSTed here.
COLLECTION = f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases"


def path(node: str) -> str:
    """Where a node's Lease is: GET it, PUT it renewed."""
    return f"{COLLECTION}/{node}"


def new_lease(node: str, node_uid: str, at: datetime.datetime) -> Obj:
    """The Lease a kubelet creates on its first heartbeat, owned by its Node."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": node,
            "namespace": NAMESPACE,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}
            ],
        },
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": DURATION,
            "renewTime": micro_time(at),
        },
    }


def renewed(lease: Obj, at: datetime.datetime) -> Obj:
    """The Lease with its renewTime moved to `at` (PUT it back: a stale one is a 409)."""
    return {**lease, "spec": {**(lease.get("spec") or {}), "renewTime": micro_time(at)}}


def renew(store: Store, node: str, at: datetime.datetime | None = None) -> Obj:
    """Create or renew node's Lease in the store, as its kubelet's heartbeat; `at`
    defaults to now. (Over HTTP: GET path(node), PUT renewed(…), or POST new_lease(…)
    to the collection on a 404.)"""
    at = at or datetime.datetime.now(datetime.UTC)
    current = store.find(LEASES, NAMESPACE, node)
    if current is not None:
        return store.update(LEASES, renewed(current, at))
    owner = store.get(NODES, "", node)
    return store.create(LEASES, new_lease(node, owner["metadata"]["uid"], at))
