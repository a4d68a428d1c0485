"""The three patch types kubectl sends: JSON patch, JSON merge patch, strategic merge patch."""

from __future__ import annotations

import copy
from typing import Any

from lab.api.errors import ApiError

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# The lists kube's Go types merge by a key (patchStrategy:"merge"); any other list is
# replaced whole. `ports` is keyed by containerPort in a container and by port in a Service.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "ownerReferences": "uid",
    "conditions": "type",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "secrets": "name",
}
# Lists of scalars merged as sets.
MERGED_SCALAR_LISTS = {"finalizers"}


def apply(content_type: str, target: dict[str, Any], patch: Any) -> dict[str, Any]:
    kind = content_type.split(";", 1)[0].strip()
    if kind == JSON_PATCH:
        if not isinstance(patch, list):
            raise ApiError(400, "a JSON patch is a list of operations")
        return json_patch(target, patch)
    if not isinstance(patch, dict):
        raise ApiError(400, "a merge patch is a JSON object")
    if kind == MERGE_PATCH:
        return merge_patch(target, patch)
    if kind == STRATEGIC_MERGE_PATCH:
        return strategic_merge(target, patch)
    raise ApiError(
        415,
        f"the patch type {kind} is not supported here: use a JSON, merge or strategic merge "
        "patch (server-side apply is not served by the lab)",
    )


# -- RFC 7386 --------------------------------------------------------------------------
def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- RFC 6902 --------------------------------------------------------------------------
def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, f"the JSON pointer {path!r} does not start with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str) -> Any:
    node = doc
    for part in parts[:-1]:
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise ApiError(422, f"the path {path!r} does not exist") from None
    return node


def _get(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    parent = _parent(doc, parts, path)
    try:
        return parent[int(parts[-1])] if isinstance(parent, list) else parent[parts[-1]]
    except (KeyError, IndexError, ValueError, TypeError):
        raise ApiError(422, f"the path {path!r} does not exist") from None


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    parent = _parent(doc, parts, path)
    try:
        if isinstance(parent, list):
            return parent.pop(int(parts[-1]))
        return parent.pop(parts[-1])
    except (KeyError, IndexError, ValueError, TypeError):
        raise ApiError(422, f"the path {path!r} does not exist: nothing to remove") from None


def _add(doc: Any, path: str, value: Any, replace: bool = False) -> Any:
    parts = _pointer(path)
    if not parts:
        return copy.deepcopy(value)
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if replace:
            parent[index] = copy.deepcopy(value)
        elif 0 <= index <= len(parent):
            parent.insert(index, copy.deepcopy(value))
        else:
            raise ApiError(422, f"the index in {path!r} is out of range")
    elif isinstance(parent, dict):
        if replace and last not in parent:
            raise ApiError(422, f"the path {path!r} does not exist: nothing to replace")
        parent[last] = copy.deepcopy(value)
    else:
        raise ApiError(422, f"the path {path!r} does not exist")
    return doc


def json_patch(target: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    doc: Any = copy.deepcopy(target)
    for op in operations:
        name, path = op.get("op"), op.get("path", "")
        if name == "add":
            doc = _add(doc, path, op.get("value"))
        elif name == "remove":
            _remove(doc, path)
        elif name == "replace":
            doc = _add(doc, path, op.get("value"), replace=True)
        elif name == "move":
            doc = _add(doc, path, _remove(doc, op.get("from", "")))
        elif name == "copy":
            doc = _add(doc, path, _get(doc, op.get("from", "")))
        elif name == "test":
            if _get(doc, path) != op.get("value"):
                raise ApiError(422, f"the test of {path!r} failed")
        else:
            raise ApiError(422, f"unknown JSON patch operation {name!r}")
    return doc


# -- strategic merge -------------------------------------------------------------------
def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        dicts = [i for i in items if isinstance(i, dict)]
        return "containerPort" if any("containerPort" in i for i in dicts) else "port"
    return MERGE_KEYS.get(field)


def strategic_merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    patch = dict(patch)
    directive = patch.pop("$patch", None)
    if directive == "replace":
        return _strip_directives(patch)
    if directive == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.pop("$retainKeys", None)
    orders = {
        k.split("/", 1)[1]: patch.pop(k) for k in list(patch) if k.startswith("$setElementOrder/")
    }
    deletions = {
        k.split("/", 1)[1]: patch.pop(k)
        for k in list(patch)
        if k.startswith("$deleteFromPrimitiveList/")
    }
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            result[key] = strategic_merge(result.get(key), value)
    for key, doomed in deletions.items():
        if isinstance(result.get(key), list):
            result[key] = [v for v in result[key] if v not in doomed]
    for key, order in orders.items():
        if isinstance(result.get(key), list):
            result[key] = _ordered(key, result[key], order)
    if retain is not None:
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def _merge_list(field: str, current: Any, patch: list[Any]) -> list[Any]:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [_strip_directives(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    current = current if isinstance(current, list) else []
    if field in MERGED_SCALAR_LISTS:
        return current + [v for v in patch if v not in current]
    key = _merge_key(field, current + patch)
    if key is None:
        return _strip_directives(patch)
    result = copy.deepcopy(current)
    for item in patch:
        if not isinstance(item, dict):
            continue
        index = next(
            (
                i
                for i, old in enumerate(result)
                if isinstance(old, dict) and old.get(key) == item.get(key)
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
        elif index is None:
            result.append(strategic_merge({}, item))
        else:
            result[index] = strategic_merge(result[index], item)
    return result


def _ordered(field: str, items: list[Any], order: list[Any]) -> list[Any]:
    key = _merge_key(field, items + order)
    if key is None:
        wanted = order
        return [v for v in wanted if v in items] + [v for v in items if v not in wanted]
    position = {o.get(key): i for i, o in enumerate(order) if isinstance(o, dict)}
    return sorted(items, key=lambda item: position.get(item.get(key), len(position)))
