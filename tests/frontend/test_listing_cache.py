"""frontend/listing_cache.py: each listing body parsed and rendered once."""

from __future__ import annotations

import json

import pytest
from markupsafe import Markup

from frontend.listing_cache import ListingCache


def test_listing_cache_parses_and_renders_each_body_once() -> None:
    cache = ListingCache(capacity=2)
    one, two, three = (json.dumps({"items": [{"id": i}]}).encode() for i in (1, 2, 3))
    assert cache.payload(one) == {"items": [{"id": 1}]}
    assert cache.payload(one) is cache.payload(bytes(one))  # equal bytes, parsed once
    renders: list[int | None] = []

    def render(tag: str, written: int | None = None) -> Markup:
        renders.append(written)
        return Markup(f"<ol>{tag}</ol>")

    assert cache.html(one, None, lambda: render("a")) == "<ol>a</ol>"
    assert cache.html(one, None, lambda: render("b")) == "<ol>a</ol>"  # kept
    assert cache.html(one, 7, lambda: render("c", 7)) == "<ol>c</ol>"  # `written` differs
    assert renders == [None, 7]
    # A body never parsed here (so never checked) is rendered, not kept.
    assert cache.html(two, None, lambda: render("d")) == "<ol>d</ol>"
    assert cache.html(two, None, lambda: render("e")) == "<ol>e</ol>"
    assert cache.html(None, None, lambda: render("f")) == "<ol>f</ol>"
    cache.payload(two)
    cache.payload(three)  # over capacity: the least recently used (one) goes
    assert cache.html(one, None, lambda: render("g")) == "<ol>g</ol>"
    with pytest.raises(ValueError):
        cache.payload(b"{not json")
