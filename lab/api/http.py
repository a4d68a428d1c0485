"""The HTTP face of the API server: auth, discovery, the verbs, Table answers and watches."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from lab.api import (
    admission,
    discovery,
    eviction,
    openapi,
    podexec,
    podlogs,
    portforward,
    printers,
    verbs,
)
from lab.api.errors import ApiError
from lab.api.podlogs import PodLogs
from lab.api.resources import POD_STREAMS
from lab.api.routes import Target, parse
from lab.api.spdy import frames
from lab.api.storage import Store

log = logging.getLogger("lab.api")
_UNAUTHENTICATED = {"/healthz", "/livez", "/readyz"}
# A watch with no timeoutSeconds ends after this long, as kube-apiserver's
# --min-request-timeout makes them end: clients re-watch.
WATCH_TIMEOUT = 1800.0


def _json(code: int, body: Any, warnings: list[str] | None = None) -> Response:
    response = Response(
        json.dumps(body, separators=(",", ":")), code, media_type="application/json"
    )
    for warning in warnings or []:
        response.headers.append("Warning", f'299 - "{warning}"')
    return response


def _wants_table(request: Request) -> bool:
    # kubectl lists Table (v1, then v1beta1) before plain JSON: it prefers a Table.
    return "as=Table" in request.headers.get("accept", "")


class ApiServer:
    """An ASGI app over a Store; every request needs the bearer token."""

    def __init__(
        self,
        store: Store,
        token: str,
        address: str,
        logs: PodLogs | None = None,
        kubelet: podexec.Kubelet | None = None,
    ) -> None:
        self.store = store
        self.token = token
        self.address = address
        # The node's container logs and exec; None: no kubelet runs (root-free server).
        self.logs = logs
        self.kubelet = kubelet

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(WebSocket(scope, receive, send))
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        try:
            response = await self._handle(request)
        except ApiError as error:
            response = _json(error.code, error.status())
        except ClientDisconnect:
            # The client left before its body arrived (kubectl killed, or the lab's own
            # components at shutdown): nobody to answer, and no fault of the server's.
            log.debug("%s %s: the client went away", request.method, request.url.path)
            return
        except Exception as exc:  # a bug here: a Status naming it, never a bare traceback
            log.exception("%s %s failed", request.method, request.url.path)
            failure = ApiError(500, f"the lab's API server failed on this request: {exc!r}")
            response = _json(500, failure.status())
        log.debug("%s %s -> %s", request.method, request.url.path, response.status_code)
        await response(scope, receive, send)

    async def _websocket(self, ws: WebSocket) -> None:
        """exec over the channel protocol, port-forward over tunnelled SPDY; anything else
        is refused, and kubectl falls back to its SPDY request, which gets a Status."""
        offered = ws.headers.get("sec-websocket-protocol", "")
        try:
            if not self._authenticated(ws) or self.kubelet is None:
                raise ApiError(403, "refused")
            _, _, target = parse(ws.url.path.rstrip("/"))
            if target is None or target.subresource not in ("exec", "portforward"):
                raise ApiError(403, "refused")
            pod = self.store.get(target.resource, target.namespace or "", target.name)
            if target.subresource == "exec":
                await self._exec(ws, target, pod, podexec.chosen_protocol(offered))
            else:
                await self._portforward(ws, pod, offered)
        except ApiError as error:
            log.info("WebSocket %s refused: %s", ws.url.path, error)
            await ws.close(code=1008)

    async def _exec(
        self, ws: WebSocket, target: Target, pod: dict[str, Any], protocol: str | None
    ) -> None:
        assert self.kubelet is not None
        params = ws.query_params
        container = podlogs.container_of(pod, params.get("container"))
        stdin = params.get("stdin") in ("true", "1")
        tty = params.get("tty") in ("true", "1")
        entered = self.kubelet.exec_argv(target.name, container, stdin, tty)
        if protocol is None or entered is None:
            raise ApiError(400, f"container {container} is not running")
        await ws.accept(subprotocol=protocol)
        argv, env = entered
        await podexec.run(ws, argv, env, params.getlist("command"), stdin, tty)

    async def _portforward(self, ws: WebSocket, pod: dict[str, Any], offered: str) -> None:
        address = (pod.get("status") or {}).get("podIP")
        if portforward.PROTOCOL not in [p.strip() for p in offered.split(",")] or not address:
            raise ApiError(400, "no port-forward for this pod")
        await ws.accept(subprotocol=portforward.PROTOCOL)
        meta = pod["metadata"]
        session = portforward.PortForwardSession(ws.send_bytes, meta["name"], meta["uid"], address)
        try:
            while True:
                await session.feed(await ws.receive_bytes())
        except (WebSocketDisconnect, RuntimeError, frames.ProtocolError):
            pass
        finally:
            session.close()

    def _authenticated(self, request: Request | WebSocket) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip(), self.token)

    async def _handle(self, request: Request) -> Response:
        path = request.url.path.rstrip("/") or "/"
        if path in _UNAUTHENTICATED:
            return Response("ok", media_type="text/plain")
        if not self._authenticated(request):
            raise ApiError(401, "Unauthorized")
        if path == "/version":
            return _json(200, discovery.VERSION)
        if path == "/api":
            return _json(200, discovery.api_versions(self.address))
        if path == "/apis":
            return _json(200, discovery.api_groups())
        if path.startswith("/openapi/"):
            return self._openapi(path)
        parts = path.strip("/").split("/")
        if parts[0] == "apis" and len(parts) == 2:
            group = discovery.api_group(parts[1])
            if group is None:
                raise ApiError(404, f"the server could not find the requested resource ({path})")
            return _json(200, group)
        group_name, version, target = parse(path)
        if target is None:
            listed = discovery.resource_list(group_name, version)
            if listed is None:
                raise ApiError(404, f"the server could not find the requested resource ({path})")
            return _json(200, listed)
        return await self._verb(request, target)

    def _openapi(self, path: str) -> Response:
        if path == "/openapi/v2":
            return Response(openapi.V2_EMPTY, media_type=openapi.V2_PROTOBUF)
        if path == "/openapi/v3":
            return Response(openapi.root(), media_type="application/json")
        parts = path.removeprefix("/openapi/v3/").split("/")
        doc = None
        if parts[0] == "api" and len(parts) == 2:
            doc = openapi.document("", parts[1])
        elif parts[0] == "apis" and len(parts) == 3:
            doc = openapi.document(parts[1], parts[2])
        if doc is None:
            raise ApiError(404, f"the lab serves no OpenAPI document at {path}")
        return Response(doc, media_type="application/json")

    async def _verb(self, request: Request, target: Target) -> Response:
        params = dict(request.query_params)
        method = request.method
        warnings = admission.warnings_for(target.resource)
        if target.subresource in POD_STREAMS:
            pod = self.store.get(target.resource, target.namespace or "", target.name)
            if not (pod.get("spec") or {}).get("nodeName"):
                # kube-apiserver's words for a pod no node runs: none does here yet.
                raise ApiError(400, f"pod {target.name} does not have a host assigned")
            if target.subresource == "log" and self.logs is not None:
                return self._log(target, pod, params)
            raise ApiError(
                501,
                f"the lab's API server does not serve pods/{target.subresource} yet",
                "NotImplemented",
            )
        if method == "GET" and not target.name:
            if params.get("watch") in ("true", "1"):
                return self._watch(request, target, params, warnings)
            return self._list(request, target, params, warnings)
        if method == "GET":
            obj = self.store.get(target.resource, target.namespace or "", target.name)
            if target.subresource == "scale":
                return _json(200, verbs.scale_of(target.resource, obj), warnings)
            return self._object(request, target, obj, warnings)
        if "protobuf" in request.headers.get("content-type", ""):
            raise ApiError(
                415,
                "the lab's API server reads JSON only, not protobuf (what `kubectl create "
                "<kind>` and `kubectl run` send): write the object with "
                "`--dry-run=client -o yaml | kubectl apply -f -`",
            )
        body = await request.body()
        warnings = admission.warnings_for(target.resource, write=method != "DELETE")
        if method == "POST" and target.subresource == "eviction":
            obj = eviction.evict(
                self.store, target.namespace or "", target.name, verbs.decode(body)
            )
            return _json(201, obj)
        if method == "POST" and not target.name:
            code, obj, more = verbs.create(self.store, target, body, params)
        elif method == "PUT" and target.name:
            code, obj, more = verbs.update(self.store, target, body, params)
        elif method == "PATCH" and target.name:
            content_type = request.headers.get("content-type", "")
            code, obj, more = verbs.apply_patch(self.store, target, body, content_type, params)
        elif method == "DELETE" and target.name:
            code, obj, more = verbs.delete(self.store, target, body, params)
        elif method == "DELETE":
            code, obj, more = verbs.delete_collection(self.store, target, params)
        else:
            raise ApiError(
                405, f"the server does not allow this method on the requested resource ({method})"
            )
        return _json(code, obj, warnings + [w for w in more if w not in warnings])

    def _log(self, target: Target, pod: dict[str, Any], params: dict[str, str]) -> Response:
        assert self.logs is not None
        logs = self.logs
        path, now, offset = logs.read(pod, params)
        if params.get("follow") not in ("true", "1"):
            return Response(now, media_type="text/plain")
        uid = pod["metadata"]["uid"]

        def alive() -> bool:
            current = self.store.find(target.resource, target.namespace or "", target.name)
            return current is not None and current["metadata"]["uid"] == uid

        async def stream() -> AsyncIterator[bytes]:
            yield now
            async for more in logs.follow(path, offset, alive):
                yield more

        return StreamingResponse(stream(), media_type="text/plain")

    def _object(
        self, request: Request, target: Target, obj: dict[str, Any], warnings: list[str]
    ) -> Response:
        if _wants_table(request):
            include = request.query_params.get("includeObject", "Metadata")
            table = printers.table(
                target.resource.kind, [obj], obj["metadata"]["resourceVersion"], include
            )
            return _json(200, table, warnings)
        return _json(200, obj, warnings)

    def _list(
        self, request: Request, target: Target, params: dict[str, str], warnings: list[str]
    ) -> Response:
        items, revision = verbs.list_objects(self.store, target, params)
        if _wants_table(request):
            include = params.get("includeObject", "Metadata")
            return _json(
                200, printers.table(target.resource.kind, items, str(revision), include), warnings
            )
        return _json(200, verbs.as_list(target.resource, items, revision), warnings)

    def _watch(
        self, request: Request, target: Target, params: dict[str, str], warnings: list[str]
    ) -> Response:
        predicate = verbs.predicate(target, params)
        raw = params.get("resourceVersion", "")
        try:
            since = int(raw) if raw else 0
        except ValueError:
            raise ApiError(400, f"invalid resourceVersion {raw!r}") from None
        initial: list[dict[str, Any]] = []
        if not raw or raw == "0" or params.get("sendInitialEvents") == "true":
            initial, since = self.store.list(target.resource, target.namespace, predicate)
        watch = self.store.watch(target.resource, target.namespace, since, predicate)
        table = _wants_table(request)
        include = params.get("includeObject", "Metadata")
        timeout = float(params.get("timeoutSeconds") or WATCH_TIMEOUT)
        bookmark = params.get("sendInitialEvents") == "true"

        def frame(kind: str, obj: dict[str, Any]) -> bytes:
            if table and kind != "BOOKMARK":
                obj = printers.table(
                    target.resource.kind, [obj], obj["metadata"]["resourceVersion"], include
                )
            return json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"

        async def stream() -> AsyncIterator[bytes]:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            try:
                for obj in initial:
                    yield frame("ADDED", obj)
                if bookmark:
                    yield frame("BOOKMARK", _bookmark(target, since))
                while True:
                    left = deadline - loop.time()
                    if left <= 0:
                        return
                    try:
                        event = await asyncio.wait_for(watch.queue.get(), left)
                    except TimeoutError:
                        return
                    if event is None:
                        return
                    yield frame(event.type, event.object)
            finally:
                self.store.stop(watch)

        response = StreamingResponse(stream(), media_type="application/json")
        for warning in warnings:
            response.headers.append("Warning", f'299 - "{warning}"')
        return response


def _bookmark(target: Target, revision: int) -> dict[str, Any]:
    return {
        "kind": target.resource.kind,
        "apiVersion": target.resource.api_version,
        "metadata": {
            "resourceVersion": str(revision),
            "annotations": {"k8s.io/initial-events-end": "true"},
        },
    }
