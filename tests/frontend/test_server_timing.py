"""frontend/server_timing.py: the backend's Server-Timing header, read leniently."""

from __future__ import annotations

from frontend.server_timing import parse_server_timing


def test_server_timing_is_parsed_leniently() -> None:
    header = "db;dur=1.25, cache;desc=redis;dur=0.3, app;dur=2.0, junk, bad;dur=x"
    assert parse_server_timing(header) == {"db": 1.25, "cache": 0.3, "app": 2.0}
    assert parse_server_timing("") == {}
