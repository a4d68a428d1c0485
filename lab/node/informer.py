"""A list-and-watch cache of one resource, as client-go's informers keep one.

List once, then watch from the list's resourceVersion; a 410 or a broken watch
lists again. Every change calls `on_change`, and the cache is what the node's
components read: they never ask the API server in their own loops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from lab.node.client import ApiUnavailable, Client, Gone, Obj

RETRY_SECONDS = 0.5


def key_of(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


class Informer:
    def __init__(self, client: Client, path: str, on_change: Callable[[], None]) -> None:
        self.client = client
        self.path = path
        self.on_change = on_change
        self.cache: dict[str, Obj] = {}
        self.synced = asyncio.Event()

    def items(self) -> list[Obj]:
        return list(self.cache.values())

    def get(self, namespace: str, name: str) -> Obj | None:
        return self.cache.get(f"{namespace}/{name}")

    async def run(self) -> None:
        while True:
            try:
                items, version = await self.client.list(self.path)
                self.cache = {key_of(obj): obj for obj in items}
                self.synced.set()
                self.on_change()
                async for event in self.client.watch(self.path, version):
                    obj = event["object"]
                    if event["type"] == "DELETED":
                        self.cache.pop(key_of(obj), None)
                    elif event["type"] in ("ADDED", "MODIFIED"):
                        self.cache[key_of(obj)] = obj
                    self.on_change()
            except (ApiUnavailable, Gone):
                await asyncio.sleep(RETRY_SECONDS)
