"""The node's informer against the lab's API server, root-free: list, then watch."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from lab.api.server import InThread, Running
from lab.node.client import ApiError, Client
from lab.node.informer import Informer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    thread = InThread(tmp_path_factory.mktemp("apiserver"))
    running = thread.start()
    yield running
    thread.stop()


def _client(server: Running) -> Client:
    return Client(server.url, server.credentials.ca_pem, server.credentials.token)


def _config_map(name: str, value: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"k": value},
    }


async def _until(check) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(5):  # the cache catches up within moments, or never
        while not check():  # noqa: ASYNC110 (the cache is the informer's to fill)
            await asyncio.sleep(0.02)


def test_the_cache_follows_creates_updates_and_deletes(server: Running) -> None:
    async def scenario() -> None:
        client = _client(server)
        changes: list[int] = []
        informer = Informer(client, "/api/v1/configmaps", lambda: changes.append(1))
        path = "/api/v1/namespaces/default/configmaps"
        await client.create(path, _config_map("before", "1"))
        task = asyncio.create_task(informer.run())
        try:
            await asyncio.wait_for(informer.synced.wait(), 5)
            assert informer.get("default", "before") is not None  # from the list
            await client.create(path, _config_map("after", "2"))
            await _until(lambda: informer.get("default", "after") is not None)
            current = await client.get(f"{path}/after")
            current["data"] = {"k": "3"}
            await client.replace(f"{path}/after", current)
            await _until(lambda: (informer.get("default", "after") or {}).get("data") == {"k": "3"})
            await client.delete(f"{path}/before")
            await _until(lambda: informer.get("default", "before") is None)
            assert len(changes) >= 4  # the list, then each of the three events
        finally:
            task.cancel()
            await client.close()

    asyncio.run(scenario())


def test_a_refused_write_is_an_api_error_with_its_code(server: Running) -> None:
    async def scenario() -> None:
        client = _client(server)
        try:
            with pytest.raises(ApiError) as refused:
                await client.get("/api/v1/namespaces/default/configmaps/none-such")
            assert refused.value.code == 404
        finally:
            await client.close()

    asyncio.run(scenario())


def test_without_the_token_nothing_is_listed(server: Running) -> None:
    async def scenario() -> None:
        client = Client(server.url, server.credentials.ca_pem, "wrong")
        try:
            with pytest.raises(ApiError) as refused:
                await client.list("/api/v1/pods")
            assert refused.value.code == 401
        finally:
            await client.close()

    asyncio.run(scenario())
