"""Which pooled client connections are old enough to be closed.

kube-proxy picks a backend pod per *connection*. A client whose pooled
connections never go idle would talk to the same pods forever, so after
`max_age` seconds the server answers with `Connection: close` and the client
reconnects, letting the kernel pick again. While draining, every response
closes its connection so clients move to other pods before this one stops.
"""

from __future__ import annotations

import time

from starlette.types import Scope

from common.lifecycle import Lifecycle


class ConnectionAges:
    def __init__(self, max_age: float, lifecycle: Lifecycle, keepalive_timeout: float) -> None:
        self.max_age = max_age
        self.lifecycle = lifecycle
        # (client ip, client port) identifies a live TCP connection. A
        # connection past max_age is dropped from here at its next request;
        # one still listed after max_age + keepalive_timeout has been idle
        # long enough for the server to have closed it, so it can go.
        self._first_seen: dict[tuple[str, int], float] = {}
        self._stale_after = max_age + keepalive_timeout
        self._next_prune = time.monotonic() + self._stale_after

    def should_close(self, scope: Scope) -> bool:
        if self.lifecycle.draining:
            return True
        if self.max_age <= 0:
            return False
        client = scope.get("client")
        if not client:
            return False
        key = (client[0], client[1])
        now = time.monotonic()
        if now >= self._next_prune:
            cutoff = now - self._stale_after
            self._first_seen = {k: t for k, t in self._first_seen.items() if t > cutoff}
            self._next_prune = now + self._stale_after
        first = self._first_seen.setdefault(key, now)
        if now - first >= self.max_age:
            del self._first_seen[key]
            return True
        return False
