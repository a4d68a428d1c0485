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
from collections.abc import Callable, Iterable
from types import FrameType
from typing import TypeVar

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp

from common.identity import PodIdentity
from common.lifecycle import Lifecycle
from common.logging import configure_logging
from common.metrics_server import serve_metrics
from common.settings import CommonSettings
from common.tracing import configure_tracing
from common.version import VERSION

S = TypeVar("S", bound=CommonSettings)

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


def run_tier(
    service: str,
    settings: S,
    create_app: Callable[[S, Lifecycle], FastAPI],
    *,
    quiet_loggers: Iterable[str] = (),
) -> None:
    """`python -m backend` and `python -m frontend`: log, trace, metrics, serve.

    `quiet_loggers` log warnings and worse only, whatever LOG_LEVEL says.
    """
    configure_logging(settings.log_level, settings.pod_name, service)
    for name in quiet_loggers:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
    # Before the app is built: its middleware takes the tracer as it is made.
    configure_tracing(PodIdentity.from_settings(service, VERSION, settings), settings)
    lifecycle = Lifecycle()
    app = create_app(settings, lifecycle)
    serve_metrics(app.state.metrics.registry, settings.host, settings.metrics_port)
    serve(app, lifecycle, settings, settings.port)
