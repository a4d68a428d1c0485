"""Label selectors (`app=web,tier in (a,b),!canary`) and field selectors (`metadata.name=x`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from lab.api.errors import ApiError

Obj = dict[str, Any]
Test = Callable[[dict[str, str]], bool]

_SET = re.compile(r"^\s*(!?)\s*([\w./-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_EQ = re.compile(r"^\s*([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)\s*$")

# Fields kube-apiserver lets each kind be selected by, beside metadata.name/namespace.
FIELDS: dict[str, set[str]] = {
    "Pod": {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    },
    "Event": {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    },
    "Secret": {"type"},
    "Namespace": {"status.phase"},
    "Node": {"spec.unschedulable"},
    "ReplicaSet": {"status.replicas"},
}


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside `in (…)` parentheses."""
    terms, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return [t for t in terms if t.strip()]


def _term(term: str) -> Test:
    eq = _EQ.match(term)
    if eq:
        key, op, value = eq.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    match = _SET.match(term)
    if not match:
        raise ApiError(400, f"unable to parse requirement: {term.strip()!r}")
    negate, key, op, values = match.groups()
    if op:
        allowed = {v.strip() for v in values.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in allowed
        return lambda labels: labels.get(key) not in allowed
    if negate:
        return lambda labels: key not in labels
    return lambda labels: key in labels


def label_matcher(text: str | None) -> Callable[[Obj], bool]:
    tests = [_term(t) for t in _split_terms(text or "")]

    def matches(obj: Obj) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(test(labels) for test in tests)

    return matches


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A LabelSelector object (matchLabels, matchExpressions) against labels; empty matches all."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, op, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        if (
            (op == "In" and labels.get(key) not in values)
            or (op == "NotIn" and present and labels[key] in values)
            or (op == "Exists" and not present)
            or (op == "DoesNotExist" and present)
        ):
            return False
    return True


def _field_value(obj: Obj, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):  # Event.source is matched by its component
        return str(value.get("component", ""))
    return str(value)


def field_matcher(text: str | None, kind: str) -> Callable[[Obj], bool]:
    allowed = {"metadata.name", "metadata.namespace"} | FIELDS.get(kind, set())
    tests: list[tuple[str, bool, str]] = []
    for term in _split_terms(text or ""):
        eq = _EQ.match(term)
        if not eq:
            raise ApiError(400, f"invalid field selector: {term.strip()!r}")
        path, op, value = eq.groups()
        if path not in allowed:
            raise ApiError(400, f"field label not supported: {path}")
        tests.append((path, op == "!=", value))

    def matches(obj: Obj) -> bool:
        return all((_field_value(obj, p) == v) != negate for p, negate, v in tests)

    return matches
