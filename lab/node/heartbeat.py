"""The kubelet's heartbeat: its node's Lease in kube-node-lease, renewed over the API.

As the kubelet's node lease controller does: every `every` seconds GET the Lease, PUT
it back with a new renewTime, or create it (owned by the Node, so it goes with the node)
when there is none. The node-lifecycle controller reads that renewTime
(lab/api/controllers/nodelifecycle.py): a node whose Lease goes stale past its grace
is marked Ready=Unknown and tainted unreachable, and a renewed one is made Ready again
and untainted, so the kubelet writes no Ready condition of its own.

pause() is a silent kubelet (`lab node stop`): nothing is renewed until resume(), which
beats at once; on_back is called once the node is renewing again after a pause or an
outage. The Lease's shape is lab/api/leases.py's, the one place it is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Callable

from lab.api import leases
from lab.node.client import ApiError, ApiUnavailable, Client, Obj

log = logging.getLogger("lab.node.heartbeat")
# A beat that waits longer is abandoned and counted as the API server unreachable: the
# node client has no read timeout (it watches), and a connection to a server that went
# away can hang. Under the node-monitor grace (8 s), as the kubelet bounds its lease
# requests below its lease duration.
BEAT_TIMEOUT = 5.0


class Heartbeat:
    def __init__(
        self,
        client: Client,
        node_name: str,
        every: float = leases.RENEW_EVERY,
        on_error: Callable[[str], None] | None = None,
        on_back: Callable[[], None] | None = None,
        timeout: float = BEAT_TIMEOUT,
    ) -> None:
        self.client = client
        self.node_name = node_name
        self.every = every
        self.on_error = on_error or log.warning
        # After the first renewal that follows a pause or an outage: the kubelet resyncs
        # its pods' statuses then (PodManager.resync), not before, or the controller,
        # still seeing a stale Lease, could mark them not ready again after the write.
        self.on_back = on_back
        self.timeout = timeout
        self.renewals = 0  # Leases written (created or renewed)
        self.conflicts = 0  # renewals lost to another writer: retried on the next beat
        self.failures = 0  # beats that reached no API server, or were refused
        self.last_renewed: datetime.datetime | None = None  # the renewTime last written
        self._beating = asyncio.Event()
        self._beating.set()
        self._woken = asyncio.Event()
        self._reported = False  # one report per outage, not one per beat
        self._silent = False  # paused or failing since the last renewal

    @property
    def paused(self) -> bool:
        return not self._beating.is_set()

    def pause(self) -> None:
        """Stop renewing: to the node-lifecycle controller the node has gone silent."""
        self._beating.clear()
        self._silent = True

    def resume(self) -> None:
        """Renew again, at once."""
        self._beating.set()
        self._woken.set()

    async def run(self) -> None:
        """Beat until cancelled: the first at once, then every `every` seconds."""
        while True:
            await self._beating.wait()
            self._woken.clear()
            await self.beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), self.every)

    async def beat(self) -> None:
        """One renewal; a failure is counted and reported, never raised."""
        try:
            async with asyncio.timeout(self.timeout):
                written = await self._renew()
        except ApiError as exc:
            if exc.code == 409:  # another writer (or a second creator) won: next beat
                self.conflicts += 1
                return
            self._failed(f"lease of node {self.node_name}: {exc}")
            return
        except ApiUnavailable as exc:
            self._failed(f"lease of node {self.node_name}: API server unreachable: {exc}")
            return
        except TimeoutError:
            self._failed(
                f"lease of node {self.node_name}: API server unreachable:"
                f" no answer within {self.timeout} s"
            )
            return
        if written is None:
            return  # paused while the GET was under way
        self.renewals += 1
        self.last_renewed = leases.renewed_at(written)
        if self._reported:
            log.info("lease of node %s renewed again", self.node_name)
        self._reported = False
        if self._silent:
            self._silent = False
            if self.on_back is not None:
                self.on_back()

    async def _renew(self) -> Obj | None:
        try:
            current: Obj | None = await self.client.get(leases.path(self.node_name))
        except ApiError as exc:
            if exc.code != 404:
                raise
            current = None
        if self.paused:
            return None
        now = datetime.datetime.now(datetime.UTC)
        if current is not None:
            return await self.client.replace(
                leases.path(self.node_name), leases.renewed(current, now)
            )
        node = await self.client.get(f"/api/v1/nodes/{self.node_name}")
        lease = leases.new_lease(self.node_name, node["metadata"]["uid"], now)
        return await self.client.create(leases.COLLECTION, lease)

    def _failed(self, message: str) -> None:
        self.failures += 1
        self._silent = True
        if not self._reported:
            self._reported = True
            self.on_error(message)
