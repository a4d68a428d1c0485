"""Pages of messages by the exact bytes the backend answered: parsed once, rendered once."""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

# Lists kept per page: the newest, and one just written to (`?written=`).
_WRITTEN_VARIANTS = 4


@dataclass(slots=True)
class CachedListing:
    """One backend answer's messages, parsed, and their rendered lists by `written`.

    The page's renderer reads `rendered` and keeps there the list it had to
    render: the next view of the same answer finds it, and rendering the page
    never calls back into this module.
    """

    payload: Any
    rendered: dict[int | None, Markup] = field(default_factory=dict)


class ListingCache:
    """Pages of messages by the exact bytes the backend answered: parsed once, rendered once.

    Between two writes, every view of a page gets the same bytes from the
    backend (the same page of messages, from Redis), so parsing them and
    rendering their list on every view gave the same result over and over,
    at about a fifth of the page's cost. A write changes the bytes (a new
    message, new ids) and so is never hidden. Only that list is kept: the
    route panel and the form are made afresh for every view.
    """

    def __init__(self, capacity: int = 64) -> None:
        self._capacity = capacity
        self._pages: OrderedDict[bytes, CachedListing] = OrderedDict()

    def lookup(self, body: bytes, written: int | None) -> CachedListing:
        """`json.loads(body)`, once per distinct body (raises ValueError like
        it), with the lists rendered from it so far; room is made there for
        the list a view with this `written` will render, if it is not kept."""
        page = self._pages.get(body)
        if page is None:
            page = CachedListing(json.loads(body))
            self._pages[body] = page
            if len(self._pages) > self._capacity:
                self._pages.popitem(last=False)
        else:
            self._pages.move_to_end(body)
        if written not in page.rendered and len(page.rendered) >= _WRITTEN_VARIANTS:
            page.rendered.clear()  # `written` comes from the query string
        return page
