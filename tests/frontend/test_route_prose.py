"""The route panel's words, from the partials in frontend/templates/route/."""

from __future__ import annotations

import pytest

from frontend.route_prose import any_place_prose, failure_words, place_prose
from frontend.runs_on import PLACES, Place


@pytest.mark.parametrize("place", PLACES)
def test_every_place_has_every_word_on_one_line(place: Place) -> None:
    words = place_prose(place, "backend")
    for text in (words.between, words.frontend, words.name, words.address, words.pod):
        assert text and "\n" not in text and "  " not in text
    assert "`backend`" in words.name or (place == "unknown" and "backend" in words.name)
    assert "X-Served-By" in words.pod


def test_each_place_says_what_stands_between_the_tiers() -> None:
    assert "ClusterIP" in place_prose("kubernetes", "backend").address_title
    assert "Docker's embedded DNS" in place_prose("compose", "backend").name
    assert "No Service, no ClusterIP" in place_prose("local", "backend").between
    assert "`RUNS_ON`" in place_prose("unknown", "backend").between


def test_the_host_is_put_in_the_words() -> None:
    assert "`api.internal`" in place_prose("kubernetes", "api.internal").name


def test_words_for_any_place_and_for_failures() -> None:
    common = any_place_prose()
    assert "Cache-aside" in common.data_hit and "\n" not in common.data_miss
    assert failure_words("address", "backend", "refused").startswith(
        "Nothing accepted the connection (refused)."
    )
    assert "service-name=backend" in failure_words("address", "backend", "refused")
    assert failure_words("name", "backend", "no such name") == (
        "`backend` did not resolve: no such name"
    )
    assert failure_words("pod", "backend", "reset") == (
        "Connected, but no answer came back (reset)."
    )
    assert failure_words("data", "backend", "plain") == "plain"
