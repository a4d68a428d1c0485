"""A guestbook message as it crosses the wire: what is written, what is read.

Shared by both tiers: the backend validates with it, the frontend documents its
proxied `/api/messages` with it, so the two OpenAPI documents cannot drift.

`MessageIn` carries every rule the server applies in its JSON Schema
(`minLength`, `maxLength` and a `pattern`), so a client generated from the
OpenAPI refuses exactly what the server refuses. The server checks the very
same pattern with Python's `re` (the dialect schemathesis and `jsonschema`
validate with), then says in words what was wrong: pydantic's own pattern
error would show people the regular expression.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from common.contract import AUTHOR_MAX, TEXT_MAX

# Python's str.strip() whitespace, less the control characters refused anyway.
_SPACE = r"\x20\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# A character that is neither a control character (Unicode Cc) nor whitespace.
_VISIBLE = rf"[^\x00-\x1f\x7f-\x9f{_SPACE}]"

# The author: no control character at all, and something besides whitespace.
AUTHOR_PATTERN = rf"^[{_SPACE}]*{_VISIBLE}[^\x00-\x1f\x7f-\x9f]*$"
# The text: newlines too (LF or CRLF, not a lone CR), and something besides them.
TEXT_PATTERN = rf"^(?:[{_SPACE}\n]|\r\n)*{_VISIBLE}(?:[^\x00-\x09\x0b-\x1f\x7f-\x9f]|\r\n)*$"


_AUTHOR_RE = re.compile(AUTHOR_PATTERN)
_TEXT_RE = re.compile(TEXT_PATTERN)
_SURROGATE = re.compile("[\ud800-\udfff]")


def _check(value: str, pattern: re.Pattern[str], limit: int, newlines: bool) -> str:
    if pattern.search(value):
        return value
    for ch in value:
        if unicodedata.category(ch) == "Cc" and not (newlines and ch == "\n"):
            if ch == "\r" and newlines:
                raise ValueError("a carriage return is allowed only before a line feed")
            raise ValueError(f"control character U+{ord(ch):04X} is not allowed")
    raise ValueError(f"must be 1 to {limit} characters after trimming")


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    author: str = Field(
        min_length=1,
        max_length=AUTHOR_MAX,
        json_schema_extra={"pattern": AUTHOR_PATTERN},
        description=f"1 to {AUTHOR_MAX} characters, no control characters, not only"
        " whitespace; stored trimmed",
        examples=["Ada"],
    )
    text: str = Field(
        min_length=1,
        max_length=TEXT_MAX,
        json_schema_extra={"pattern": TEXT_PATTERN},
        description=f"1 to {TEXT_MAX} characters; line breaks are the only control"
        " characters allowed; not only whitespace; stored trimmed, CRLF as LF",
        examples=["Hello!"],
    )

    @field_validator("author", "text", mode="before")
    @classmethod
    def _no_surrogates(cls, value: object) -> object:
        # JSON can smuggle in a lone surrogate ("\ud800"), which no database
        # can store (nor pydantic's length check read). Not in the pattern: in
        # a JavaScript regex without the `u` flag a surrogate range would also
        # refuse every emoji.
        surrogate = _SURROGATE.search(value) if isinstance(value, str) else None
        if surrogate:
            raise ValueError(f"control character U+{ord(surrogate.group()):04X} is not allowed")
        return value

    @field_validator("author")
    @classmethod
    def _author(cls, value: str) -> str:
        return _check(value, _AUTHOR_RE, AUTHOR_MAX, newlines=False).strip()

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        return _check(value, _TEXT_RE, TEXT_MAX, newlines=True).replace("\r\n", "\n").strip()


class MessageOut(BaseModel):
    id: int = Field(ge=1)
    author: str
    text: str
    created_at: datetime
    written_by: str = Field(description="the backend pod that wrote it")


CacheResult = Literal["hit", "miss", "off"]


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_before_id: int | None = Field(description="pass as before_id for the next, older page")
    cache: CacheResult = Field(description="hit: served by Redis; miss: from the database; off")
    cache_state: Literal["up", "down", "disabled"]
