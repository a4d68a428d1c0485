"""At the public edge the frontend starts its own trace.

A browser's `traceparent` is the browser's word, not a fact: continued as
it came, it would let anyone choose the trace id (planted in every log line
of both tiers), opt out of sampling with flag `00`, or hang the spans under
a parent that does not exist (issue 26). So the frontend's server span is a
new root, sampled by the tiers' own sampler, and the incoming context is
kept only as a link on it (common/server_span.py adds it), where a reader
can still follow it.

Behind a proxy that starts traces itself (an ingress, a mesh), set
`TRACE_TRUSTED_PROXIES` to its addresses (CIDRs): a request whose TCP peer is
one of them continues the incoming trace as before. Everything else is
treated as the public edge.
"""

from __future__ import annotations

import contextvars
import ipaddress
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from starlette.types import Receive, Scope, Send

from common.server_span import INCOMING_TRACE

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# The TCP peer of the request being served, for the propagator to judge.
_peer: contextvars.ContextVar[str | None] = contextvars.ContextVar("edge_peer", default=None)


def parse_networks(value: str) -> tuple[Network, ...]:
    """`10.0.0.0/8, 192.168.1.5` → networks; ValueError names a bad entry."""
    networks = []
    for entry in value.split(","):
        entry = entry.strip()
        if entry:
            networks.append(ipaddress.ip_network(entry, strict=False))
    return tuple(networks)


class EdgePropagator(TextMapPropagator):
    """The process's propagator, except that extraction trusts only trusted peers."""

    def __init__(self, inner: TextMapPropagator, trusted: Sequence[Network]) -> None:
        self._inner = inner
        self._trusted = tuple(trusted)

    def _trusts(self, peer: str | None) -> bool:
        if not peer or not self._trusted:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._trusted)

    def extract(
        self,
        carrier: CarrierT,
        context: otel_context.Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> otel_context.Context:
        extracted = self._inner.extract(carrier, context, getter)
        if self._trusts(_peer.get()):
            return extracted
        incoming = trace.get_current_span(extracted).get_span_context()
        base = context if context is not None else otel_context.Context()
        if not incoming.is_valid:
            return base
        # Not a parent: a value the server span turns into a link.
        return otel_context.set_value(INCOMING_TRACE, incoming, base)

    def inject(
        self,
        carrier: CarrierT,
        context: otel_context.Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        self._inner.inject(carrier, context, setter)

    @property
    def fields(self) -> set[str]:
        return self._inner.fields


def install_edge_propagator(trusted: Sequence[Network]) -> None:
    """Make extraction edge-aware in this process (the frontend's only extraction
    is its incoming requests'; what it sends to the backend is unchanged)."""
    current = propagate.get_global_textmap()
    inner = current._inner if isinstance(current, EdgePropagator) else current
    propagate.set_global_textmap(EdgePropagator(inner, trusted))


class EdgeFastAPI(FastAPI):
    """FastAPI, telling the propagator who the request's TCP peer is.

    FastAPI extracts the incoming context in its own `__call__`, outside every
    middleware: this is the one place that runs before it, for each request.
    """

    def __init__(self, *args: Any, trusted_peers: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._note_peer = trusted_peers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._note_peer:
            await super().__call__(scope, receive, send)
            return
        client = scope.get("client")
        token = _peer.set(client[0] if client else None)
        try:
            await super().__call__(scope, receive, send)
        finally:
            _peer.reset(token)
