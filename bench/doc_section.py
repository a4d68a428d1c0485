"""A section of docs/benchmarks.md that one bench owns, between two HTML comments.

`make bench-rules` rewrites only its own section; `make bench` rewrites the
rest of the page and carries the section over, so neither erases the other's
numbers.
"""

from __future__ import annotations

import re

# The section goes before this heading when the page has no such section yet.
BEFORE = "## Machine"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}: start -->", f"<!-- {name}: end -->"


def extract(text: str, name: str) -> str | None:
    """The section with its markers, or None."""
    start, end = _markers(name)
    found = re.search(re.escape(start) + r".*?" + re.escape(end), text, flags=re.S)
    return found.group(0) if found else None


def put(text: str, name: str, body: str) -> str:
    """`text` with the section `name` holding `body`: replaced where it is, else inserted."""
    start, end = _markers(name)
    section = f"{start}\n{body.rstrip()}\n{end}"
    if extract(text, name) is not None:
        pattern = re.escape(start) + r".*?" + re.escape(end)
        return re.sub(pattern, lambda _: section, text, count=1, flags=re.S)
    at = text.find(f"\n{BEFORE}\n")
    if at < 0:
        return text.rstrip("\n") + "\n\n" + section + "\n"
    return text[: at + 1] + section + "\n\n" + text[at + 1 :]


def carry(old: str, new: str, name: str) -> str:
    """`new`, with the section `name` of `old` kept if `new` has none."""
    section = extract(old, name)
    if section is None or extract(new, name) is not None:
        return new
    start, end = _markers(name)
    return put(new, name, section[len(start) : -len(end)].strip("\n"))
