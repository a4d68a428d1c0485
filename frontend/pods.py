"""Backend pods this frontend has heard of, learnt from their `/api/info`.

`X-Served-By` names the pod that answered; its IP, node and database kind
come from `/api/info`, asked once per new pod name. Bounded, because pods
come and go with every rollout while this process lives on.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_DATABASE_LABELS = {"mysql": "MySQL", "mariadb": "MariaDB", "sqlite": "SQLite"}


@dataclass(frozen=True, slots=True)
class PodInfo:
    name: str
    ip: str
    node: str
    database: str
    cache: str

    @property
    def database_label(self) -> str:
        return _DATABASE_LABELS.get(self.database, self.database or "the database")


class PodDirectory:
    def __init__(self, capacity: int = 256) -> None:
        self._capacity = capacity
        self._pods: OrderedDict[str, PodInfo] = OrderedDict()

    def learn(self, info: Mapping[str, Any]) -> PodInfo | None:
        name = info.get("pod_name")
        if not isinstance(name, str) or not name:
            return None
        pod = PodInfo(
            name=name,
            ip=str(info.get("pod_ip") or ""),
            node=str(info.get("node_name") or ""),
            database=str(info.get("database") or ""),
            cache=str(info.get("cache") or ""),
        )
        self._pods[name] = pod
        self._pods.move_to_end(name)
        while len(self._pods) > self._capacity:
            self._pods.popitem(last=False)
        return pod

    def get(self, name: str | None) -> PodInfo | None:
        return self._pods.get(name) if name else None
