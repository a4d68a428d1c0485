"""Start-up and shutdown state shared by the server runner and the app."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class Lifecycle:
    """Whether this process should take traffic.

    The server runner flips `draining` when SIGTERM arrives; `/readyz` reads
    it. It is created once per process, before the app, and handed to both.
    """

    started_at: float = field(default_factory=time.monotonic)
    draining: bool = False
    drain_started_at: float | None = None

    def start_draining(self) -> None:
        if not self.draining:
            self.draining = True
            self.drain_started_at = time.monotonic()
