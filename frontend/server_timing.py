"""The backend's `Server-Timing` header, read for the route panel's timings."""

from __future__ import annotations

import contextlib


def parse_server_timing(header: str) -> dict[str, float]:
    """`db;dur=1.2, cache;dur=0.3, app;dur=2.0` → {"db": 1.2, "cache": 0.3, "app": 2.0}."""
    timings: dict[str, float] = {}
    for metric in header.split(","):
        name, _, params = metric.strip().partition(";")
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "dur" and name:
                with contextlib.suppress(ValueError):
                    timings[name] = float(value)
    return timings
