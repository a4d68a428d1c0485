"""Minimal apps doing the same I/O as the project's hot paths, for "ratio to the limit".

Each is the obvious code a careful engineer would write for that one path,
with the same libraries, the same server runner and settings, and the same
GC tuning as the real tiers, and none of the production features (no access
log, metrics, request ids, Server-Timing, connection-age check, error
mapping). `SAME_WORK=cached|db|page python -m bench.same_work`.

- cached: one Redis round trip running the backend's own lookup script (count
  the visit, read the generation and the page) and the cached bytes sent back;
- db: one SELECT of 20 rows through SQLAlchemy `text()` on a pooled engine in
  the thread pool, rows to dicts, `json.dumps`;
- page: one GET to the backend on a shared aiohttp session, the JSON parsed,
  and a Jinja2 page, autoescaped, of the messages, a form with a fresh
  idempotency key, and a small route panel (this pod → the backend's name →
  the address connected to → the pod that answered → cache or database, and
  the round trip): the issue counts the panel and the form as the page's work.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response

from common.gc_tuning import settle_heap
from common.lifecycle import Lifecycle
from common.settings import CommonSettings
from common.uvicorn_runner import serve


class SameWorkSettings(CommonSettings):
    port: int = 8098
    same_work: str = "cached"  # which app: cached, db or page
    database_url: str = ""
    redis_url: str = ""
    backend_url: str = ""


def _with_readyz(app: FastAPI, lifecycle: Lifecycle) -> FastAPI:
    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "draining" if lifecycle.draining else "ready"}

    return app


def cached_app(settings: SameWorkSettings, lifecycle: Lifecycle) -> FastAPI:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    from backend.cache import _LOOKUP, GENERATION_KEY, PAGES_KEY, VISITS_KEY

    # The backend's client options (backend/cache.py): a timeout on every
    # call is part of the work of any client that must not hang.
    client = aioredis.Redis.from_url(
        settings.redis_url,
        socket_timeout=0.25,
        socket_connect_timeout=0.25,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=0,
        max_connections=64,
    )
    lookup = client.register_script(_LOOKUP)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        settle_heap()
        yield
        await client.aclose()

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)

    @app.get("/api/messages")
    async def messages() -> Response:
        keys = [VISITS_KEY, GENERATION_KEY, PAGES_KEY]
        _generation, body, _before = await lookup(keys=keys, args=[0, 20])
        return Response(body, media_type="application/json")

    return _with_readyz(app, lifecycle)


def db_app(settings: SameWorkSettings, lifecycle: Lifecycle) -> FastAPI:
    from anyio import to_thread
    from sqlalchemy import create_engine, text

    # The backend's pool size and its timeouts (backend/database.py): a client that
    # must not hang on a stuck server pays for them too.
    engine = create_engine(
        settings.database_url,
        pool_size=10,
        max_overflow=0,
        connect_args={"connect_timeout": 3, "read_timeout": 10, "write_timeout": 10},
    )
    query = text(
        "SELECT id, author, text, created_at, written_by FROM messages ORDER BY id DESC LIMIT 20"
    )

    def page() -> bytes:
        with engine.connect() as conn:
            rows = [
                {
                    "id": r.id,
                    "author": r.author,
                    "text": r.text,
                    "created_at": r.created_at.isoformat() + "Z",
                    "written_by": r.written_by,
                }
                for r in conn.execute(query)
            ]
        return json.dumps({"items": rows}, ensure_ascii=False).encode()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        settle_heap()
        yield
        engine.dispose()

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)

    @app.get("/api/messages")
    async def messages() -> Response:
        return Response(await to_thread.run_sync(page), media_type="application/json")

    return _with_readyz(app, lifecycle)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Guestbook</title></head>
<body><main>
<section><h2>How this page reached its data</h2><ol>
  <li>this pod <code>{{ pod }}</code></li>
  <li>the name <code>{{ backend_url }}</code></li>
  <li>the address <code>{{ address }}</code></li>
  <li>the backend pod <code>{{ served_by }}</code></li>
  <li>the data from <code>{{ source }}</code>, round trip {{ "%.2f"|format(ms) }} ms</li>
</ol></section>
<form method="post" action="/messages">
  <input type="hidden" name="idempotency_key" value="{{ key }}">
  <input name="author" maxlength="64" required><textarea name="text" maxlength="1000" required>
  </textarea><button>Sign</button>
</form>
<ol>
{% for m in messages %}
  <li id="message-{{ m["id"] }}"><span>{{ m["author"] }}</span>
  <time datetime="{{ m["created_at"] }}">{{ m["created_at"] }}</time>
  <p>{{ m["text"] }}</p><p>#{{ m["id"] }} · <code>{{ m["written_by"] }}</code></p></li>
{% endfor %}
</ol>
</main></body></html>
"""


def page_app(settings: SameWorkSettings, lifecycle: Lifecycle) -> FastAPI:
    import time
    import uuid

    import aiohttp
    from jinja2 import Environment

    template = Environment(autoescape=True).from_string(_PAGE)
    session: dict[str, aiohttp.ClientSession] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        session["s"] = aiohttp.ClientSession(
            base_url=settings.backend_url, connector=aiohttp.TCPConnector(limit=100)
        )
        settle_heap()
        yield
        await session["s"].close()

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)

    @app.get("/")
    async def index() -> HTMLResponse:
        started = time.perf_counter()
        async with session["s"].get("/api/messages") as response:
            peer = (
                response.connection.transport.get_extra_info("peername")
                if response.connection
                else None
            )
            data: dict[str, Any] = json.loads(await response.read())
            served_by = response.headers.get("x-served-by", "?")
        return HTMLResponse(
            template.render(
                messages=data["items"],
                pod=settings.pod_name,
                backend_url=settings.backend_url,
                address=f"{peer[0]}:{peer[1]}" if peer else "?",
                served_by=served_by,
                source=data.get("cache", "?"),
                ms=(time.perf_counter() - started) * 1000,
                key=uuid.uuid4().hex,
            )
        )

    return _with_readyz(app, lifecycle)


APPS = {"cached": cached_app, "db": db_app, "page": page_app}

if __name__ == "__main__":
    settings = SameWorkSettings()
    lifecycle = Lifecycle()
    serve(APPS[settings.same_work](settings, lifecycle), lifecycle, settings, settings.port)
