"""Node taints and pod tolerations, matched as the scheduler and the taint manager match them."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """One toleration against one taint: an empty effect tolerates every effect, an empty
    key with Exists every key, Exists any value, Equal (the default) the same value."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if not key:
        return operator == "Exists"
    if key != taint.get("key"):
        return False
    return operator == "Exists" or (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated(taints: list[Obj], tolerations: list[Obj], effects: tuple[str, ...]) -> Obj | None:
    """The first taint with one of these effects that no toleration tolerates."""
    for taint in taints:
        if taint.get("effect") in effects and not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def describe(taint: Obj) -> str:
    """`{key: value}`, as kube-scheduler names a taint in its reasons."""
    return f"{{{taint.get('key', '')}: {taint.get('value') or ''}}}"
