"""The kubelet's heartbeat (lab/node/heartbeat.py) against the in-process API server with
three nodes and its node-lifecycle controller running. Root-free.

The controller's grace is shortened from the lab's 8 s to GRACE here, and the heartbeats
beat every EVERY, so a silent node is seen within seconds; the tests wait for states
with deadlines and assert no durations.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from lab.api import leases
from lab.api.controllers import nodelifecycle
from lab.api.server import InThread, Running
from lab.node.client import ApiError, Client, Obj
from lab.node.heartbeat import Heartbeat

GRACE = 2.5
EVERY = 0.25
NODES = ("lab-node-1", "lab-node-2", "lab-node-3")
UNREACHABLE = "node.kubernetes.io/unreachable"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Running]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nodelifecycle, "GRACE", datetime.timedelta(seconds=GRACE))
        patch.setattr(nodelifecycle, "RESYNC", 0.25)  # read when the controller starts
        thread = InThread(tmp_path, nodes=3)
        running = thread.start()
        yield running
        thread.stop()


def _client(server: Running, url: str | None = None) -> Client:
    return Client(url or server.url, server.credentials.ca_pem, server.credentials.token)


async def _until(check: Callable[[], Awaitable[bool]], what: str, deadline: float = 20.0) -> None:
    """Wait for a state: poll `check` until it holds, failing with `what` at the deadline."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not await check():
        if loop.time() > end:
            raise AssertionError(f"not reached within {deadline} s: {what}")
        await asyncio.sleep(0.1)


async def _node(client: Client, name: str) -> tuple[str, list[tuple[str, str]]]:
    """The node's Ready status and its taints, (key, effect)."""
    node = await client.get(f"/api/v1/nodes/{name}")
    (ready,) = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    taints = [(t["key"], t["effect"]) for t in node["spec"].get("taints") or []]
    return ready["status"], taints


async def _lease(client: Client, name: str) -> Obj | None:
    try:
        return await client.get(leases.path(name))
    except ApiError as exc:
        if exc.code == 404:
            return None
        raise


class Beating:
    """Heartbeats running as tasks, cancelled on leaving; their errors collected."""

    def __init__(
        self, client: Client, *names: str, every: float = EVERY, timeout: float = 5.0
    ) -> None:
        self.errors: list[str] = []
        self.backs: list[str] = []  # on_back, by node
        self.beats = {
            n: Heartbeat(client, n, every, self.errors.append, self._back(n), timeout)
            for n in names
        }
        self.tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Beating:
        self.tasks = [asyncio.create_task(b.run()) for b in self.beats.values()]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self.tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def _back(self, name: str) -> Callable[[], None]:
        return lambda: self.backs.append(name)

    def alive(self) -> bool:
        return not any(t.done() for t in self.tasks)


def _scenario(server: Running, body: Callable[[Client], Awaitable[None]]) -> None:
    async def run() -> None:
        client = _client(server)
        try:
            await body(client)
        finally:
            await client.close()

    asyncio.run(run())


async def _all_leases(client: Client) -> bool:
    return all([await _lease(client, n) is not None for n in NODES])


def test_the_first_beat_creates_the_lease_owned_by_the_node_and_the_next_renews_it(
    server: Running,
) -> None:
    async def body(client: Client) -> None:
        node = await client.get("/api/v1/nodes/lab-node-2")
        # A beat an hour away: only the first one, at once, can write the Lease.
        async with Beating(client, "lab-node-2", every=3600) as beating:
            beat = beating.beats["lab-node-2"]

            async def created() -> bool:
                return await _lease(client, "lab-node-2") is not None

            await _until(created, "the Lease created by the first beat")
            first = await _lease(client, "lab-node-2")
            assert first is not None
            assert first["spec"]["holderIdentity"] == "lab-node-2"
            (owner,) = first["metadata"]["ownerReferences"]
            assert (owner["kind"], owner["name"], owner["uid"]) == (
                "Node",
                "lab-node-2",
                node["metadata"]["uid"],
            )
            assert beat.renewals == 1 and beat.last_renewed == leases.renewed_at(first)
            beat.resume()  # beats at once

            async def renewed() -> bool:
                return beat.renewals == 2

            await _until(renewed, "the second beat")
            second = await _lease(client, "lab-node-2")
            assert second is not None
            assert second["metadata"]["uid"] == first["metadata"]["uid"]
            moved_to = leases.renewed_at(second)
            assert moved_to == beat.last_renewed
            assert moved_to is not None and moved_to > leases.renewed_at(first)  # type: ignore[operator]
            assert await _lease(client, "lab-node-1") is None  # only its own node's
            assert beating.errors == [] and beating.alive()

    _scenario(server, body)


def test_three_beating_nodes_stay_ready_past_the_grace_period(server: Running) -> None:
    async def body(client: Client) -> None:
        async with Beating(client, *NODES) as beating:
            await _until(lambda: _all_leases(client), "the three Leases")
            await asyncio.sleep(2 * GRACE)  # the controller looks every 0.25 s meanwhile
            for name in NODES:
                assert await _node(client, name) == ("True", [])
            events, _ = await client.list("/api/v1/events")
            assert [e for e in events if e["reason"] == "NodeNotReady"] == []
            assert all(b.renewals > 2 for b in beating.beats.values())
            assert beating.backs == []  # never silent
            assert beating.errors == [] and beating.alive()

    _scenario(server, body)


def test_a_paused_node_goes_unknown_and_tainted_the_others_stay_ready_then_it_comes_back(
    server: Running,
) -> None:
    async def body(client: Client) -> None:
        async with Beating(client, *NODES) as beating:
            await _until(lambda: _all_leases(client), "the three Leases")
            silent = beating.beats["lab-node-2"]
            silent.pause()
            assert silent.paused
            renewals = silent.renewals

            async def unreachable() -> bool:
                return await _node(client, "lab-node-2") == (
                    "Unknown",
                    [(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")],
                )

            await _until(unreachable, "lab-node-2 Ready=Unknown and tainted unreachable")
            assert await _node(client, "lab-node-1") == ("True", [])
            assert await _node(client, "lab-node-3") == ("True", [])
            assert silent.renewals == renewals  # nothing renewed while paused
            assert beating.backs == []
            events, _ = await client.list("/api/v1/events")
            marked = [e["involvedObject"]["name"] for e in events if e["reason"] == "NodeNotReady"]
            assert marked == ["lab-node-2"]
            silent.resume()
            assert not silent.paused

            async def ready() -> bool:
                return await _node(client, "lab-node-2") == ("True", [])

            await _until(ready, "lab-node-2 Ready again, its taints lifted")
            assert silent.renewals > renewals
            assert beating.backs == ["lab-node-2"]  # once, for the node that came back
            assert beating.errors == [] and beating.alive()

    _scenario(server, body)


class RacedClient(Client):
    """The node's client, with another writer renewing the node's Lease between this
    client's GET and its PUT, `races` times: the PUT carries a stale resourceVersion."""

    def __init__(self, server: Running, rival: Client, races: int) -> None:
        super().__init__(server.url, server.credentials.ca_pem, server.credentials.token)
        self.rival = rival
        self.races = races

    async def replace(self, path: str, obj: Obj) -> Obj:
        if self.races and path.startswith(leases.COLLECTION + "/"):
            self.races -= 1
            current = await self.rival.get(path)
            now = datetime.datetime.now(datetime.UTC)
            await self.rival.replace(path, leases.renewed(current, now))
        return await super().replace(path, obj)


def test_a_renewal_that_conflicts_is_retried_on_the_next_beat(server: Running) -> None:
    async def body(client: Client) -> None:
        raced = RacedClient(server, client, races=2)
        try:
            async with Beating(raced, "lab-node-3") as beating:
                beat = beating.beats["lab-node-3"]

                async def past_the_races() -> bool:
                    return beat.conflicts == 2 and beat.renewals >= 3

                await _until(past_the_races, "two conflicts, then renewals again")
                assert raced.races == 0
                assert beating.errors == [] and beating.alive()
                lease = await _lease(client, "lab-node-3")
                assert lease is not None
                before = leases.renewed_at(lease)

                async def moved() -> bool:
                    again = await _lease(client, "lab-node-3")
                    return again is not None and leases.renewed_at(again) != before

                await _until(moved, "the Lease renewed after the conflicts")
        finally:
            await raced.close()

    _scenario(server, body)


class Door:
    """A TCP forwarder in front of the API server, shut (its connections cut) and opened
    again on the same port: for the node, the API server going away and coming back."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self.server: asyncio.Server | None = None
        self.pipes: list[asyncio.StreamWriter] = []

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def shut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.pipes:
            writer.close()
        self.pipes = []
        await self.server.wait_closed()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self.pipes += [writer, up_writer]

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))


def test_an_unreachable_api_server_is_reported_once_and_the_heartbeat_recovers(
    server: Running,
) -> None:
    async def body(client: Client) -> None:
        door = Door(server.port)
        await door.open()
        through = _client(server, f"https://127.0.0.1:{door.port}")
        try:
            async with Beating(through, "lab-node-1") as beating:
                beat = beating.beats["lab-node-1"]

                async def beaten() -> bool:
                    return beat.renewals >= 2

                await _until(beaten, "renewals through the door")
                await door.shut()

                async def failing() -> bool:
                    return beat.failures >= 4

                await _until(failing, "four failed beats")
                assert len(beating.errors) == 1  # one report for the outage, not one a beat
                assert "API server unreachable" in beating.errors[0]
                assert beating.alive()
                renewals = beat.renewals
                await door.open()

                async def recovered() -> bool:
                    return beat.renewals >= renewals + 2

                await _until(recovered, "renewals once the API server is back")
                assert beating.alive() and len(beating.errors) == 1
                assert beating.backs == ["lab-node-1"]
                await door.shut()  # a second outage is reported again
                await _until(lambda: _errors(beating, 2), "the second outage reported")
        finally:
            await through.close()

    _scenario(server, body)


async def _errors(beating: Beating, count: int) -> bool:
    return len(beating.errors) >= count


def test_a_node_that_does_not_exist_is_reported_and_retried(server: Running) -> None:
    async def body(client: Client) -> None:
        async with Beating(client, "lab-node-9") as beating:
            beat = beating.beats["lab-node-9"]

            async def failing() -> bool:
                return beat.failures >= 3

            await _until(failing, "three failed beats")
            (message,) = beating.errors
            assert "lab-node-9" in message and "404" in message
            assert beat.renewals == 0 and beating.alive()
            assert await _lease(client, "lab-node-9") is None

    _scenario(server, body)


def test_the_api_server_stopped_and_started_again_leaves_the_heartbeat_running(
    tmp_path: Path,
) -> None:
    """The in-process server itself stopped: one report, the loop alive. A restarted
    InThread makes new credentials (a fresh CA), so this client cannot recover; the door
    test above shows the recovery."""
    first = InThread(tmp_path / "first", nodes=3)
    running = first.start()

    async def body(client: Client) -> None:
        # A connection to the stopped server can hang: each beat gives up after 1 s.
        async with Beating(client, "lab-node-1", timeout=1.0) as beating:
            beat = beating.beats["lab-node-1"]

            async def beaten() -> bool:
                return beat.renewals >= 1

            await _until(beaten, "a renewal")
            await asyncio.to_thread(first.stop)
            failures = beat.failures

            async def failing() -> bool:
                return beat.failures >= failures + 3

            await _until(failing, "three failed beats on the stopped server")
            assert len(beating.errors) == 1 and beating.alive()
            assert "API server unreachable" in beating.errors[0]
            again = InThread(tmp_path / "again", port=running.port, nodes=3)
            await asyncio.to_thread(again.start)
            try:
                failures = beat.failures
                await _until(failing, "three more beats against the new server")
                assert len(beating.errors) == 1 and beating.alive()
            finally:
                await asyncio.to_thread(again.stop)

    _scenario(running, body)
