"""How many replicas each of a Deployment's ReplicaSets should have next, as the
deployment controller's rolling update and Recreate strategies decide it.

Rolling update: the new ReplicaSet grows while the total stays within replicas +
maxSurge, and the old ones shrink (unavailable pods first, oldest ReplicaSet first)
while at least replicas - maxUnavailable pods stay available. A new pod that never
becomes available therefore stops the rollout, as on a cluster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Size:
    replicas: int  # spec.replicas
    available: int  # status.availableReplicas
    pods: int = 0  # status.replicas: pods that still exist


def _resolve(value: Any, total: int, round_up: bool, default: str) -> int:
    value = default if value is None else value
    if isinstance(value, int):
        return value
    share = int(str(value).rstrip("%")) * total / 100
    return math.ceil(share) if round_up else math.floor(share)


def limits(spec: dict[str, Any]) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as numbers of pods; never both zero."""
    replicas = spec.get("replicas", 1)
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    surge = _resolve(rolling.get("maxSurge"), replicas, True, "25%")
    unavailable = _resolve(rolling.get("maxUnavailable"), replicas, False, "25%")
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def plan(spec: dict[str, Any], new: Size, olds: list[Size]) -> tuple[int, list[int]]:
    """The new ReplicaSet's replicas and each old one's (olds oldest first)."""
    replicas = spec.get("replicas", 1)
    if not any(o.replicas for o in olds):  # no rollout under way: plain scaling
        return replicas, [0] * len(olds)
    if (spec.get("strategy") or {}).get("type") == "Recreate":
        gone = all(o.pods == 0 for o in olds)  # the new pods start once the old are gone
        return (replicas if gone else 0), [0] * len(olds)
    surge, unavailable = limits(spec)
    total = new.replicas + sum(o.replicas for o in olds)
    grown = new.replicas + max(0, min(replicas + surge - total, replicas - new.replicas))
    grown = min(grown, replicas)
    targets = [o.replicas for o in olds]
    minimum = replicas - unavailable
    budget = grown + sum(targets) - minimum - (grown - new.available)
    for i, old in enumerate(olds):  # unavailable old pods go first
        cut = max(0, min(budget, targets[i] - old.available))
        targets[i] -= cut
        budget -= cut
    spare = (
        new.available
        + sum(min(o.available, t) for o, t in zip(olds, targets, strict=True))
        - minimum
    )
    for i in range(len(olds)):  # then available ones, while enough stay available
        cut = max(0, min(spare, targets[i]))
        targets[i] -= cut
        spare -= cut
    return grown, targets
