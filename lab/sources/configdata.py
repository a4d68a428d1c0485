"""ConfigMaps and Secrets as the kubelet's env and volume code reads them.

namespace → name → {key: value}, values as text: a ConfigMap's `data` as stored
(its `binaryData` is for volumes only, which the lab does not project), a
Secret's `data` base64-decoded (the API keeps only `data`: admission folds
`stringData` into it). A value that is not UTF-8 keeps its bytes as surrogate
escapes, so one binary Secret does not hide the others.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from lab.sources import Obj

ByNamespace = dict[str, dict[str, dict[str, str]]]


def _by_namespace(objects: list[Obj], values: Callable[[Obj], dict[str, str]]) -> ByNamespace:
    found: ByNamespace = {}
    for obj in objects:
        meta = obj["metadata"]
        found.setdefault(meta["namespace"], {})[meta["name"]] = values(obj)
    return found


def _decoded(value: str) -> str:
    return base64.b64decode(value).decode("utf-8", errors="surrogateescape")


def config_maps(objects: list[Obj]) -> ByNamespace:
    return _by_namespace(objects, lambda cm: {k: str(v) for k, v in (cm.get("data") or {}).items()})


def secrets(objects: list[Obj]) -> ByNamespace:
    return _by_namespace(
        objects, lambda s: {k: _decoded(v) for k, v in (s.get("data") or {}).items()}
    )
