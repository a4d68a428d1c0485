"""Run an app under uvicorn with production settings and podinfo-style shutdown.

On SIGTERM the pod first fails readiness (`Lifecycle.draining`), keeps
serving for `shutdown_delay` so that every node's kube-proxy has removed it,
then stops accepting and lets in-flight requests finish within
`graceful_timeout`. A second SIGINT (Ctrl-C twice) exits at once.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from types import FrameType

import uvicorn
from starlette.types import ASGIApp

from common.lifecycle import Lifecycle
from common.settings import CommonSettings

log = logging.getLogger("server")


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, delay: float) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.delay = delay

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.lifecycle.draining or self.delay <= 0:
            super().handle_exit(sig, frame)
            if self.delay <= 0:
                self.lifecycle.start_draining()
            return
        # Only a flag is set here: this runs inside a signal handler.
        self.lifecycle.start_draining()
        if sig == signal.SIGINT:
            # Ctrl-C on a laptop: nobody routes to us, skip the delay.
            super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        started = self.lifecycle.drain_started_at
        if started is not None and not self.should_exit:
            if time.monotonic() - started >= self.delay:
                log.info("drain delay over, closing listeners", extra={"delay_s": self.delay})
                self.should_exit = True
            elif counter % 10 == 0:
                log.info("draining: readiness failing, still serving")
        return await super().on_tick(counter)


def serve(app: ASGIApp, lifecycle: Lifecycle, settings: CommonSettings, port: int) -> None:
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=int(settings.keepalive_timeout_seconds),
        timeout_graceful_shutdown=int(settings.graceful_timeout_seconds),
        lifespan="on",
    )
    # uvicorn re-raises the signal that stopped it once it has shut down;
    # for Ctrl-C that is a KeyboardInterrupt, which is the expected way out.
    with contextlib.suppress(KeyboardInterrupt):
        DrainingServer(config, lifecycle, settings.shutdown_delay_seconds).run()
