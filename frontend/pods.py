"""Backend pods this frontend has heard of, learnt from their `/api/info`.

`X-Served-By` names the pod that answered; its IP, node and database kind
come from `/api/info`, asked once per new pod name, beside the page rather
than on its way: the view that meets a new pod shows its name, the next
ones its details. Bounded, because pods come and go with every rollout
while this process lives on.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

_DATABASE_LABELS = {"mysql": "MySQL", "mariadb": "MariaDB", "sqlite": "SQLite"}


@dataclass(frozen=True, slots=True)
class PodInfo:
    name: str
    ip: str
    node: str
    database: str
    cache: str
    # Worked out when the pod is learnt, not when a page shows it: the route
    # builder reads plain fields and never calls back into this module.
    database_label: str = field(init=False)

    def __post_init__(self) -> None:
        label = _DATABASE_LABELS.get(self.database, self.database or "the database")
        object.__setattr__(self, "database_label", label)


class PodDirectory:
    def __init__(self, capacity: int = 256) -> None:
        self._capacity = capacity
        self._pods: OrderedDict[str, PodInfo] = OrderedDict()
        # Names being asked about, and the tasks asking (held, or the event
        # loop could drop a task before it ends).
        self._asking: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()

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

    def learn_soon(
        self, name: str | None, ask: Callable[[], Awaitable[Mapping[str, Any] | None]]
    ) -> PodInfo | None:
        """The pod's details if known; else None, and learnt in the background
        (one question at a time per name)."""
        if not name:
            return None
        known = self._pods.get(name)
        if known is not None or name in self._asking:
            return known
        self._asking.add(name)
        # In a context of its own: not part of the page that met the pod, so
        # it adds nothing to that page's Server-Timing, request id or trace.
        task = asyncio.get_running_loop().create_task(
            self._learn(name, ask), context=contextvars.Context()
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return None

    async def _learn(
        self, name: str, ask: Callable[[], Awaitable[Mapping[str, Any] | None]]
    ) -> None:
        try:
            info = await ask()
        finally:
            self._asking.discard(name)
        if info is not None:
            self.learn(info)

    async def settle(self) -> None:
        """Wait for the lookups under way (at shutdown, before the client closes)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
