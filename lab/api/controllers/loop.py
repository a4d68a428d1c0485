"""The watch-and-reconcile loop every controller runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from lab.api.errors import ApiError
from lab.api.resources import Resource
from lab.api.storage import Store

log = logging.getLogger("lab.api.controllers")


async def run(
    store: Store,
    name: str,
    watched: list[Resource],
    reconcile: Callable[[Store], None],
    resync: float | None = None,
) -> None:
    """Reconcile once, then again after each burst of events on the watched resources
    (and every `resync` seconds, for a controller that acts on time passing)."""
    wake = asyncio.Event()
    watches = [store.watch(r, None, 0) for r in watched]

    async def forward(queue: asyncio.Queue) -> None:  # type: ignore[type-arg]
        while await queue.get() is not None:
            wake.set()

    forwarders = [asyncio.create_task(forward(w.queue)) for w in watches]
    try:
        while True:
            try:
                reconcile(store)
            except ApiError as error:  # a conflict with a concurrent write: the next event retries
                log.info("%s: %s", name, error.message)
            except Exception:  # a bug in one controller must not stop the others
                log.exception("%s controller failed a pass", name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), resync)
            wake.clear()
            await asyncio.sleep(0)  # let a burst of writes land before the next pass
    finally:
        for watch in watches:
            store.stop(watch)
        for task in forwarders:
            task.cancel()
