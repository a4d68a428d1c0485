"""The Deployment controller (with its ReplicaSets folded in).

Keeps `replicas` pods of the current template, named
<deployment>-<pod-template-hash>-<suffix>; a pod that is deleted is replaced
at once, while it is still terminating. Rolling updates follow
maxSurge/maxUnavailable; Recreate stops the old pods first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from lab.apiserver import ApiServer
from lab.controllers import PodRuntime
from lab.kubelet import Pod
from lab.naming import random_suffix


def resolve(value: int | str, total: int, round_up: bool) -> int:
    """maxSurge / maxUnavailable: a number or a percentage of replicas."""
    if isinstance(value, int):
        return value
    if value.endswith("%"):
        share = total * float(value[:-1]) / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(value)


def reconcile(api: ApiServer, key: str, runtime: PodRuntime) -> None:
    wl = api.workloads[key]
    want = api.replicas[key]
    new_hash = api.current_hash(key)
    live = [p for p in api.pods_of(key) if not p.deleting]
    new = [p for p in live if p.template_hash == new_hash]
    old = [p for p in live if p.template_hash != new_hash]

    def create() -> None:
        name = f"{wl.name}-{new_hash}-{random_suffix(api.rng)}"
        while name in api.pods:
            name = f"{wl.name}-{new_hash}-{random_suffix(api.rng)}"
        labels = {**api.templates[key].labels, "pod-template-hash": new_hash}
        pod = api.new_pod(key, name, labels, new_hash)
        runtime.start_pod(pod)
        new.append(pod)

    def delete(pods: Sequence[Pod], count: int) -> None:
        # As the ReplicaSet controller: not-ready pods first, then the newest.
        ranked = sorted(pods, key=lambda p: (p.ready, -p.created_at))
        for pod in ranked[:count]:
            runtime.delete_pod(pod)

    if not old:
        for _ in range(want - len(new)):
            create()
        if len(new) > want:
            delete(new, len(new) - want)
        return
    if wl.strategy.kind == "Recreate":
        delete(old, len(old))
        return
    surge = resolve(wl.strategy.max_surge, want, round_up=True)
    unavailable = resolve(wl.strategy.max_unavailable, want, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    while len(new) < want and len(new) + len(old) < want + surge:
        create()
    # Old pods that are not ready cost no availability: they go first.
    unhealthy = [p for p in old if not p.ready]
    if unhealthy:
        delete(unhealthy, len(unhealthy))
        old = [p for p in old if p.ready]
    ready = sum(p.ready for p in new) + len(old)
    can_remove = ready - (want - unavailable)
    if can_remove > 0 and old:
        delete(old, min(can_remove, len(old)))
