"""Pages of messages by the exact bytes the backend answered: parsed once, rendered once."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

# Lists kept per page: the newest, and one just written to (`?written=`).
_WRITTEN_VARIANTS = 4


@dataclass(slots=True)
class _Page:
    payload: Any
    html: dict[int | None, Markup] = field(default_factory=dict)


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
        self._pages: OrderedDict[bytes, _Page] = OrderedDict()

    def payload(self, body: bytes) -> Any:
        """`json.loads(body)`, once per distinct body. Raises ValueError like it."""
        page = self._pages.get(body)
        if page is None:
            page = _Page(json.loads(body))
            self._pages[body] = page
            if len(self._pages) > self._capacity:
                self._pages.popitem(last=False)
        else:
            self._pages.move_to_end(body)
        return page.payload

    def html(self, body: bytes | None, written: int | None, render: Callable[[], Markup]) -> Markup:
        """The rendered list for a body `payload` has seen (else rendered afresh)."""
        page = self._pages.get(body) if body is not None else None
        if page is None:
            return render()
        html = page.html.get(written)
        if html is None:
            if len(page.html) >= _WRITTEN_VARIANTS:
                page.html.clear()  # `written` comes from the query string
            html = page.html[written] = render()
        return html
