"""A node's heartbeat over HTTP, as the node side's kubelet will send it: root-free,
lab/node/client.py against an in-process API server with three nodes."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterator

import pytest

from lab.api import leases
from lab.api.server import InThread, Running
from lab.node.client import ApiError, Client

AT = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    thread = InThread(tmp_path_factory.mktemp("apiserver-leases"), nodes=3)
    running = thread.start()
    yield running
    thread.stop()


def test_a_kubelet_creates_its_lease_then_renews_it_and_a_stale_renewal_conflicts(
    server: Running,
) -> None:
    async def scenario() -> None:
        client = Client(server.url, server.credentials.ca_pem, server.credentials.token)
        try:
            with pytest.raises(ApiError) as missing:
                await client.get(leases.path("lab-node-2"))
            assert missing.value.code == 404
            node = await client.get("/api/v1/nodes/lab-node-2")
            collection = leases.path("lab-node-2").rsplit("/", 1)[0]
            created = await client.create(
                collection, leases.new_lease("lab-node-2", node["metadata"]["uid"], AT)
            )
            assert created["spec"]["renewTime"] == "2026-01-01T12:00:00.000000Z"
            later = AT + datetime.timedelta(seconds=2)
            again = await client.replace(leases.path("lab-node-2"), leases.renewed(created, later))
            assert leases.renewed_at(again) == later
            assert again["metadata"]["uid"] == created["metadata"]["uid"]
            with pytest.raises(ApiError) as stale:
                await client.replace(leases.path("lab-node-2"), leases.renewed(created, AT))
            assert stale.value.code == 409
            listed, _ = await client.list(
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
            )
            assert [lease["metadata"]["name"] for lease in listed] == ["lab-node-2"]
        finally:
            await client.close()

    asyncio.run(scenario())
