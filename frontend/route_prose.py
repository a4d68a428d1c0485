"""The route panel's lesson, in words: Jinja partials per place the frontend runs.

templates/route/<place>.txt says what stands between the tiers under `make
run` (local), compose, and Kubernetes (the lab or a cluster), and
templates/route/any_place.txt what is the same everywhere. They are plain
text with `code` in backticks: the same words go to the HTML panel (which
turns backticks into <code>) and to `GET /api/route`.

Rendered once per place and backend name, then kept: the words depend on
nothing a page view changes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jinja2

from frontend.runs_on import Place
from frontend.templating import TEMPLATES_DIR

# Not the pages' environment: this one renders text, escaped later by the
# `ticks` filter where it becomes HTML.
_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=False,  # noqa: S701 - text for JSON and for `ticks`, which escapes
    undefined=jinja2.StrictUndefined,
)


def _say(partial: str, macro: str, *args: str) -> str:
    """One macro of a partial, as one line of prose however the partial wraps it."""
    module = _ENV.get_template(f"route/{partial}.txt").module
    return " ".join(str(getattr(module, macro)(*args)).split())


@dataclass(frozen=True, slots=True)
class PlaceProse:
    """What the hops say where the frontend runs, for one backend name."""

    between: str
    frontend: str
    name_title: str
    name: str
    address_title: str
    address: str
    pod: str


@dataclass(frozen=True, slots=True)
class AnyPlaceProse:
    """What the hops say wherever the frontend runs."""

    name_literal: str
    data_hit: str
    data_miss: str
    data_direct: str
    data_unavailable: str
    data_not_reached: str


@functools.lru_cache(maxsize=32)
def place_prose(place: Place, host: str) -> PlaceProse:
    return PlaceProse(
        between=_say(place, "between"),
        frontend=_say(place, "frontend"),
        name_title=_say(place, "name_title"),
        name=_say(place, "name", host),
        address_title=_say(place, "address_title"),
        address=_say(place, "address"),
        pod=_say("any_place", "pod", _say(place, "pod_who")),
    )


@functools.lru_cache(maxsize=1)
def any_place_prose() -> AnyPlaceProse:
    return AnyPlaceProse(
        name_literal=_say("any_place", "name_literal"),
        data_hit=_say("any_place", "data_hit"),
        data_miss=_say("any_place", "data_miss"),
        data_direct=_say("any_place", "data_direct"),
        data_unavailable=_say("any_place", "data_unavailable"),
        data_not_reached=_say("any_place", "data_not_reached"),
    )


def failure_words(hop: str, host: str, error: str) -> str:
    """Why the route broke at `hop`, in plain words; the bare error for a hop without any."""
    if hop in ("name", "address"):
        return _say("any_place", f"failed_{hop}", host, error)
    if hop in ("frontend", "pod"):
        return _say("any_place", f"failed_{hop}", error)
    return error
