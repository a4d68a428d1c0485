"""The route model's JSON shape and its verdicts."""

from __future__ import annotations

from frontend.route_model import Hop, HopState, Route, Timing
from frontend.runs_on import RunsOn


def _hop(key: str, state: HopState = "ok") -> Hop:
    return Hop(key, key.title(), "v", "d", "e", "https://x", [Timing("t", 1.234)], state)


def test_a_route_is_ok_until_a_hop_fails() -> None:
    route = Route("GET /", [_hop("name"), _hop("pod")], 3.0, False, "r1")
    assert route.ok and route.failed_hop is None
    route.hops.append(_hop("data", "failed"))
    assert not route.ok and route.failed_hop == "data"


def test_as_dict_rounds_times_and_names_the_place() -> None:
    route = Route(
        "GET /",
        [_hop("name")],
        12.3456,
        True,
        None,
        runs_on=RunsOn("local", "loopback"),
        between="nothing",
    )
    body = route.as_dict()
    assert body["total_ms"] == 12.35 and body["retried"] is True
    assert body["runs_on"] == {"place": "local", "because": "loopback"}
    assert body["between"] == "nothing"
    assert body["hops"][0]["timings"] == [{"label": "t", "ms": 1.23, "note": None}]
    assert Timing("connect", None, "none: reused").as_dict()["ms"] is None
