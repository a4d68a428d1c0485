"""A Terminating namespace is emptied, then removed, as the namespace controller does.

It waits a few seconds first, as a cluster's controller takes a few: `kubectl delete -k`
deletes the namespace before the objects in it, and each of those deletes should still
find its object.
"""

from __future__ import annotations

import datetime

from lab.api import garbage
from lab.api.resources import lookup
from lab.api.storage import Store

NAMESPACES = lookup("", "v1", "namespaces")
assert NAMESPACES
WATCHED = [NAMESPACES]
GRACE = datetime.timedelta(seconds=5)
# The loop wakes this often even without events, to act once the grace is over.
RESYNC = 0.5


def reconcile(store: Store) -> None:
    namespaces, _ = store.list(NAMESPACES)
    now = datetime.datetime.now(datetime.UTC)
    for namespace in namespaces:
        stamp = namespace["metadata"].get("deletionTimestamp")
        if not stamp:
            continue
        since = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        if now - since < GRACE:
            continue
        name = namespace["metadata"]["name"]
        garbage.empty_namespace(store, name)
        store.delete(NAMESPACES, "", name)
