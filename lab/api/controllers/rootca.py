"""The `kube-root-ca.crt` ConfigMap in every namespace: the CA that signed the API
server's certificate, as kube-controller-manager's root CA publisher writes it (pods
mount it to trust the `kubernetes` Service)."""

from __future__ import annotations

from collections.abc import Callable

from lab.api.resources import lookup
from lab.api.storage import Store

NAMESPACES = lookup("", "v1", "namespaces")
CONFIGMAPS = lookup("", "v1", "configmaps")
assert NAMESPACES and CONFIGMAPS
WATCHED = [NAMESPACES, CONFIGMAPS]
NAME = "kube-root-ca.crt"


def reconciler(ca_pem: bytes) -> Callable[[Store], None]:
    data = {"ca.crt": ca_pem.decode()}

    def reconcile(store: Store) -> None:
        namespaces, _ = store.list(NAMESPACES)
        for namespace in namespaces:
            name = namespace["metadata"]["name"]
            if namespace["metadata"].get("deletionTimestamp"):
                continue
            current = store.find(CONFIGMAPS, name, NAME)
            if current is None:
                store.create(
                    CONFIGMAPS, {"metadata": {"name": NAME, "namespace": name}, "data": data}
                )
            elif current.get("data") != data:  # someone changed it: put the CA back
                current["data"] = data
                store.update(CONFIGMAPS, current)

    return reconcile
