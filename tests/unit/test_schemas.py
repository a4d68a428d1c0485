"""Input rules for a message, checked without any server."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from common.message_models import MessageIn


def test_trims_and_normalises_newlines() -> None:
    message = MessageIn(author="  Ada ", text="\r\n one\r\ntwo \n")
    assert message.author == "Ada"
    assert message.text == "one\ntwo"


@pytest.mark.parametrize(
    ("author", "text"),
    [
        ("", "x"),
        ("a", ""),
        ("a\tb", "x"),
        ("a", "esc\x1b[31m"),
        ("a", "\x7f"),
        ("a", "\ud800"),
        ("a" * 65, "x"),
        ("a", "x" * 1001),
    ],
)
def test_refuses(author: str, text: str) -> None:
    with pytest.raises(ValidationError):
        MessageIn(author=author, text=text)


def test_unicode_welcome() -> None:
    message = MessageIn(author="👩‍👩‍👧", text="🇺🇦 ‏שלום‏ zero\u200bwidth")
    assert message.author == "👩‍👩‍👧"


def test_length_counts_characters_not_bytes() -> None:
    assert MessageIn(author="é" * 64, text="😀" * 1000).author == "é" * 64
