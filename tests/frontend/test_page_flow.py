"""A `GET /` goes through each frontend module once: fetch, build the route, render.

The frontend app runs in-process (httpx's ASGI transport) in front of a
backend played by `httpx.MockTransport`, under a `sys.setprofile` hook that
notes each time the request's way *enters* a frontend module: a function of
that module starts, called (through any library code) from another module.
A module entered twice means the flow left it and came back, which is what
this test refuses. A template counts as part of the module that renders it
(frontend/templating.py for the pages, filters and all).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import httpx
import pytest

import frontend
from frontend.app_state import AppState
from frontend.backend_client import BackendClient, BackendHttpClient
from frontend.config import FrontendSettings
from frontend.main import create_app

PACKAGE = Path(frontend.__file__).resolve().parent
_HEADERS = {
    "content-type": "application/json",
    "x-served-by": "backend-7f9c",
    "server-timing": "cache;dur=0.4, app;dur=1.5",
}
_INFO = {"pod_name": "backend-7f9c", "pod_ip": "10.1.0.7", "node_name": "node-2"}

Answer = Callable[[httpx.Request], httpx.Response]


def _listing(first_id: int) -> bytes:
    items = [
        {"id": i, "author": "Ada", "text": "hello `there`", "created_at": "2026-11-25T09:30:00Z"}
        for i in range(first_id, first_id - 3, -1)
    ]
    return json.dumps({"items": items, "next_before_id": None, "cache": "hit"}).encode()


def _same_list() -> Answer:
    body = _listing(3)
    return lambda request: httpx.Response(200, content=body, headers=_HEADERS)


def _new_list_each_time() -> Answer:
    ids = itertools.count(10)
    return lambda request: httpx.Response(200, content=_listing(next(ids)), headers=_HEADERS)


def _database_down() -> Answer:
    body = b'{"error": "dependency_unavailable", "dependency": "database", "message": "down"}'
    return lambda request: httpx.Response(503, content=body, headers=_HEADERS)


def _unreachable() -> Answer:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    return answer


def _mocked_backend(answer: Answer) -> type[BackendClient]:
    """A BackendClient whose clients all talk to `answer` (its /api/info to a pod's details)."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/info":
            return httpx.Response(200, json=_INFO, headers=_HEADERS)
        return answer(request)

    class MockedBackend(BackendClient):
        def new_client(
            self,
            transport: httpx.AsyncBaseTransport,
            *,
            client_class: type[httpx.AsyncClient] = BackendHttpClient,
        ) -> httpx.AsyncClient:
            return super().new_client(httpx.MockTransport(handler), client_class=client_class)

    return MockedBackend


def _module(code: CodeType, names: dict[str, str | None]) -> str | None:
    """The frontend module a piece of code belongs to (None: not the frontend's)."""
    name = names.get(code.co_filename, "")
    if name == "":
        try:
            relative = Path(code.co_filename).resolve().relative_to(PACKAGE)
        except ValueError:
            name = None
        else:
            # A template's code is the module's that renders it: templating.py
            # for the pages, route_prose.py for the panel's words.
            name = None if relative.parts[0] == "templates" else relative.as_posix()
        names[code.co_filename] = name
    return name


class ModuleEntries:
    """The frontend modules the current task's way enters, in order, while on."""

    def __init__(self) -> None:
        self.entries: list[str] = []
        self._seen: set[FrameType] = set()
        self._names: dict[str, str | None] = {}
        self._task: asyncio.Task[Any] | None = None

    def _profile(self, frame: FrameType, event: str, arg: object) -> None:
        # A coroutine resumed after an await starts its frame again: only the
        # first start of a frame is a call. Another task (a pod being learnt
        # beside the page) is not this request's way.
        if event != "call" or frame in self._seen or asyncio.current_task() is not self._task:
            return
        self._seen.add(frame)
        module = _module(frame.f_code, self._names)
        if module is None:
            return
        caller = frame.f_back
        while caller is not None and _module(caller.f_code, self._names) is None:
            caller = caller.f_back
        if caller is None or _module(caller.f_code, self._names) != module:
            self.entries.append(module)

    async def follow(self, client: httpx.AsyncClient, url: str) -> httpx.Response:
        self._task = asyncio.current_task()
        previous = sys.getprofile()
        sys.setprofile(self._profile)
        try:
            return await client.get(url)
        finally:
            sys.setprofile(previous)

    def revisited(self) -> dict[str, int]:
        return {module: n for module, n in Counter(self.entries).items() if n > 1}


async def _trace_a_view(answer: Answer, url: str, new_visitor: bool) -> tuple[int, ModuleEntries]:
    settings = FrontendSettings(backend_url="http://backend:8000", runs_on="kubernetes")
    app = create_app(settings, backend_client=_mocked_backend(answer))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://frontend") as client:
            # A first view meets the pod (learnt beside the page) and sets the cookie.
            assert (await client.get("/")).status_code in (200, 503)
            app_state: AppState = app.state.app_state
            await app_state.pods.settle()
            if new_visitor:
                client.cookies.clear()
            entries = ModuleEntries()
            response = await entries.follow(client, url)
    assert ("set-cookie" in response.headers) is new_visitor
    return response.status_code, entries


@pytest.mark.parametrize(
    ("answer", "url", "new_visitor", "status"),
    [
        pytest.param(_same_list, "/", False, 200, id="cached-list-returning-visitor"),
        pytest.param(_new_list_each_time, "/?written=11", True, 200, id="new-list-new-visitor"),
        pytest.param(_database_down, "/", False, 503, id="backend-database-down"),
        pytest.param(_unreachable, "/", True, 503, id="backend-unreachable"),
    ],
)
def test_a_page_view_enters_each_frontend_module_once(
    answer: Callable[[], Answer], url: str, new_visitor: bool, status: int
) -> None:
    got, trace = asyncio.run(_trace_a_view(answer(), url, new_visitor))
    assert got == status
    path = " -> ".join(trace.entries)
    assert trace.revisited() == {}, path
    # The way itself, so that a tracer seeing nothing cannot pass.
    route = ["routes/pages.py", "guestbook.py", "backend_client.py", "route_builder.py"]
    assert [m for m in trace.entries if m in route] == route, path
    assert trace.entries.index("csrf.py") < trace.entries.index("templating.py"), path
    if status == 200:
        assert trace.entries.index("listing_cache.py") < trace.entries.index("route_builder.py")


def test_the_tracer_catches_a_way_that_comes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: a view that goes back to csrf after leaving it is caught."""
    from frontend import csrf
    from frontend.routes import pages

    render = pages.render

    def render_after_csrf_again(*args: Any, **kwargs: Any) -> Any:
        csrf.cookie_token(args[1])  # back to csrf, which the page already left
        return render(*args, **kwargs)

    monkeypatch.setattr(pages, "render", render_after_csrf_again)
    got, trace = asyncio.run(_trace_a_view(_same_list(), "/", False))
    assert got == 200
    assert trace.revisited() == {"csrf.py": 2}, " -> ".join(trace.entries)
