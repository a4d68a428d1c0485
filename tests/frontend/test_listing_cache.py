"""frontend/listing_cache.py: each listing body parsed and rendered once."""

from __future__ import annotations

import json

import pytest
from markupsafe import Markup

from frontend.listing_cache import ListingCache


def test_listing_cache_parses_and_renders_each_body_once() -> None:
    cache = ListingCache(capacity=2)
    one, two, three = (json.dumps({"items": [{"id": i}]}).encode() for i in (1, 2, 3))
    assert cache.lookup(one, None).payload == {"items": [{"id": 1}]}
    # Equal bytes, parsed once.
    assert cache.lookup(one, None).payload is cache.lookup(bytes(one), None).payload
    renders: list[int | None] = []

    def shown(body: bytes, written: int | None, tag: str) -> Markup:
        """What the page shows: the kept list, else one rendered and kept (as templating does)."""
        rendered = cache.lookup(body, written).rendered
        if written not in rendered:
            renders.append(written)
            rendered[written] = Markup(f"<ol>{tag}</ol>")
        return rendered[written]

    assert shown(one, None, "a") == "<ol>a</ol>"
    assert shown(one, None, "b") == "<ol>a</ol>"  # kept
    assert shown(one, 7, "c") == "<ol>c</ol>"  # `written` differs
    assert renders == [None, 7]
    assert shown(two, None, "d") == "<ol>d</ol>"
    cache.lookup(three, None)  # over capacity: the least recently used (one) goes
    assert shown(one, None, "g") == "<ol>g</ol>"
    with pytest.raises(ValueError):
        cache.lookup(b"{not json", None)


def test_a_body_keeps_a_few_written_variants_only() -> None:
    """`written` comes from the query string: a fifth variant starts the set afresh."""
    cache = ListingCache()
    body = b'{"items": []}'
    for written in (None, 1, 2, 3):
        cache.lookup(body, written).rendered[written] = Markup("<ol></ol>")
    assert set(cache.lookup(body, 3).rendered) == {None, 1, 2, 3}  # a kept one: nothing goes
    assert cache.lookup(body, 4).rendered == {}
