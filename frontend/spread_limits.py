"""What keeps the spread view from being a cheap way to load the backend.

A spread is 2N backend requests and N new connections for one unauthenticated
GET. Per frontend pod at most `SPREAD_CONCURRENCY` run at once; one more is
refused at once with 429 and Retry-After, not queued (a queue would hold the
client's connection and still spend the backend later). And a spread whose
client went away is cancelled, its backend calls with it, instead of
finishing for nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Protocol, TypeVar

from starlette.requests import Request

from frontend.backend_client import BackendClient
from frontend.config import FrontendSettings
from frontend.errors import FrontendError
from frontend.pods import PodDirectory
from frontend.spread import Spread, run_spread

T = TypeVar("T")

BUSY_RETRY_AFTER = "1"
# nginx's "client closed request": logged and counted, never seen by anyone.
CLIENT_CLOSED = 499


class SpreadGate:
    """At most `limit` spreads in flight in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self.running >= self.limit:
            raise FrontendError(
                429,
                "spread_busy",
                f"this frontend pod is already running {self.limit} spreads;"
                f" try again in {BUSY_RETRY_AFTER} s",
                headers={"Retry-After": BUSY_RETRY_AFTER},
            )
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1


class ClientGone(Exception):
    """The client closed its connection before the answer was ready."""


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_client_leaves(request: Request, work: Awaitable[T]) -> T:
    """`work`'s result; cancelled, raising ClientGone, when the client disconnects first."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        # This request itself was cancelled (the server shutting down, say):
        # the work goes with it, and the cancellation goes on as it came.
        task.cancel()
        raise
    finally:
        watch.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise ClientGone
    return task.result()


class SpreadDeps(Protocol):
    """What a spread needs of the app's state (AppState has it), named here
    rather than imported: AppState holds this module's SpreadGate."""

    @property
    def settings(self) -> FrontendSettings: ...
    @property
    def spread_gate(self) -> SpreadGate: ...
    @property
    def backend(self) -> BackendClient: ...
    @property
    def pods(self) -> PodDirectory: ...


async def bounded_spread(request: Request, app_state: SpreadDeps, n: int) -> Spread | None:
    """A spread within this pod's limits; None when its client left before the end."""
    settings = app_state.settings
    async with app_state.spread_gate.slot():
        try:
            return await unless_client_leaves(
                request,
                run_spread(app_state.backend, app_state.pods, n, settings.spread_deadline_seconds),
            )
        except ClientGone:
            return None
