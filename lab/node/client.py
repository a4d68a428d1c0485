"""A client of the lab's API server, as client-go is one for a node's components.

HTTPS to 127.0.0.1 with the lab's CA and bearer token. Only what the node needs:
list, watch (newline-delimited JSON events), create, the status subresource, delete.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx

Obj = dict[str, Any]


class ApiUnavailable(Exception):
    """The API server did not answer or refused; the caller retries."""


class Gone(Exception):
    """410: the resourceVersion is older than the server keeps; list again."""


class Client:
    def __init__(self, url: str, ca_pem: bytes, token: str) -> None:
        context = ssl.create_default_context(cadata=ca_pem.decode())
        self._http = httpx.AsyncClient(
            base_url=url,
            verify=context,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "lab-node/1"},
            timeout=httpx.Timeout(10.0, read=None),
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, body: Obj | None = None) -> Obj:
        try:
            response = await self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise ApiUnavailable(f"{method} {path}: {exc}") from exc
        answer: Obj = response.json() if response.content else {}
        if response.status_code >= 400:
            error = ApiError(response.status_code, answer.get("message") or response.text)
            raise error
        return answer

    async def list(self, path: str) -> tuple[list[Obj], str]:
        answer = await self._call("GET", path)
        return list(answer.get("items") or []), str(answer["metadata"]["resourceVersion"])

    async def watch(self, path: str, resource_version: str) -> AsyncIterator[Obj]:
        params = {"watch": "1", "resourceVersion": resource_version}
        try:
            async with self._http.stream("GET", path, params=params) as response:
                if response.status_code == 410:
                    raise Gone(path)
                if response.status_code >= 400:
                    raise ApiUnavailable(f"watch {path}: {response.status_code}")
                async for line in response.aiter_lines():
                    if not line:
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        if (event.get("object") or {}).get("code") == 410:
                            raise Gone(path)
                        raise ApiUnavailable(f"watch {path}: {event.get('object')}")
                    yield event
        except httpx.HTTPError as exc:
            raise ApiUnavailable(f"watch {path}: {exc}") from exc

    async def create(self, path: str, obj: Obj) -> Obj:
        return await self._call("POST", path, obj)

    async def get(self, path: str) -> Obj:
        return await self._call("GET", path)

    async def replace(self, path: str, obj: Obj) -> Obj:
        return await self._call("PUT", path, obj)

    async def delete(self, path: str, grace: int | None = None) -> Obj:
        body = {"gracePeriodSeconds": grace} if grace is not None else None
        return await self._call("DELETE", path, body)


class ApiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
