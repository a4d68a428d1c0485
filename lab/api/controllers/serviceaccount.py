"""A `default` ServiceAccount in every namespace."""

from __future__ import annotations

from lab.api.resources import lookup
from lab.api.storage import Store

NAMESPACES = lookup("", "v1", "namespaces")
ACCOUNTS = lookup("", "v1", "serviceaccounts")
assert NAMESPACES and ACCOUNTS
WATCHED = [NAMESPACES, ACCOUNTS]


def reconcile(store: Store) -> None:
    namespaces, _ = store.list(NAMESPACES)
    for namespace in namespaces:
        name = namespace["metadata"]["name"]
        if namespace["metadata"].get("deletionTimestamp"):
            continue
        if store.find(ACCOUNTS, name, "default") is None:
            store.create(ACCOUNTS, {"metadata": {"name": "default", "namespace": name}})
