"""Start the bench's processes in turn or all at once, and stop them all."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from bench.progress import progress
from localservers.apps import AppProcess
from localservers.ports import port_is_closed


def start(app: AppProcess) -> float:
    """Start a tier and return the seconds from process start to /readyz 200."""
    started = time.monotonic()
    app.start(ready_timeout=60)
    return time.monotonic() - started


def start_in_turn(apps: dict[str, AppProcess]) -> dict[str, float]:
    """Each process started alone, once the one before it is ready."""
    startup = {}
    for name, app in apps.items():
        progress(f"starting {name}")
        startup[name] = start(app)
    return startup


def start_at_once(apps: dict[str, AppProcess], timeout: float = 120.0) -> dict[str, float]:
    """Every process started before any is waited for; each one's seconds to /readyz 200.

    They share the cores while they start, so each time is longer than it would
    be alone, and `timeout` is for them all. One client polls them all: a client
    per poll (as AppProcess.wait_ready makes) costs CPU the starting processes want.
    """
    progress(f"starting {', '.join(apps)} at once")
    began = {}
    for name, app in apps.items():
        began[name] = time.monotonic()
        app.start(wait_ready=False)
    startup: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0) as client:
        while len(startup) < len(apps):
            for name, app in apps.items():
                if name not in startup and _ready(client, name, app):
                    startup[name] = time.monotonic() - began[name]
            if time.monotonic() > deadline:
                waiting = ", ".join(name for name in apps if name not in startup)
                raise TimeoutError(f"not ready in {timeout} s: {waiting}")
            time.sleep(0.05)
    return startup


def _ready(client: httpx.Client, name: str, app: AppProcess) -> bool:
    if app.proc is not None and app.proc.poll() is not None:
        raise RuntimeError(f"{name} ({app.module}) exited early:\n{app.logs()[-3000:]}")
    if port_is_closed(app.host, app.port):
        return False  # still importing: a bare connect costs far less than a request
    try:
        return client.get(f"{app.url}/readyz").status_code == 200
    except httpx.HTTPError:
        return False


def stop_all(apps: dict[str, AppProcess]) -> None:
    """Stop every process at once: no process's shutdown waits on another's."""
    if apps:
        with ThreadPoolExecutor(len(apps)) as pool:
            list(pool.map(AppProcess.stop, apps.values()))
