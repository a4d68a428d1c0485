"""common/message_models.py: the input rules for a message, and its JSON Schema.

The JSON Schema of a message refuses exactly what the server refuses.

A client generated from the OpenAPI validates with the document's
`minLength`/`maxLength`/`pattern`; the server with MessageIn. Both are run
here on the inputs where they could part: whitespace of every kind, control
characters, CRLF and lone CR, the trailing newline a `$` lets through, and
the length limits.
"""

from __future__ import annotations

import jsonschema
import pytest
from pydantic import ValidationError

from common.contract import AUTHOR_MAX, TEXT_MAX
from common.message_models import MessageIn

SCHEMA = MessageIn.model_json_schema()

SAMPLES = [
    "Ada",
    " Ada ",
    "",
    " ",
    "\u3000\u00a0\u2028",
    "a\tb",
    "\tAda",
    "Ada\n",
    "\nAda",
    "two\nlines",
    "two\r\nlines",
    "lone\rcr",
    "esc\x1b[31m",
    "del\x7f",
    "next line\x85",
    "\ufeff",
    "zero\u200bwidth",
    "👩‍👩‍👧",
    "\r\n",
    "a" * AUTHOR_MAX,
    "a" * (AUTHOR_MAX + 1),
    " " * AUTHOR_MAX + "a",
    "x" * TEXT_MAX,
    "x" * (TEXT_MAX + 1),
    "x\r\n" * (TEXT_MAX // 3) + "x",
]


def _schema_takes(author: str, text: str) -> bool:
    try:
        jsonschema.validate({"author": author, "text": text}, SCHEMA)
    except jsonschema.ValidationError:
        return False
    return True


def _server_takes(author: str, text: str) -> bool:
    try:
        MessageIn(author=author, text=text)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("value", SAMPLES, ids=repr)
def test_schema_and_server_agree_on_the_author(value: str) -> None:
    assert _schema_takes(value, "x") == _server_takes(value, "x")


@pytest.mark.parametrize("value", SAMPLES, ids=repr)
def test_schema_and_server_agree_on_the_text(value: str) -> None:
    assert _schema_takes("a", value) == _server_takes("a", value)


def test_the_schema_states_the_limits() -> None:
    author, text = SCHEMA["properties"]["author"], SCHEMA["properties"]["text"]
    assert (author["minLength"], author["maxLength"]) == (1, AUTHOR_MAX)
    assert (text["minLength"], text["maxLength"]) == (1, TEXT_MAX)
    assert "pattern" in author and "pattern" in text
    assert SCHEMA["additionalProperties"] is False


def test_refusals_are_said_in_words() -> None:
    with pytest.raises(ValidationError) as refused:
        MessageIn(author="a\tb", text="x")
    assert "U+0009" in str(refused.value)
    with pytest.raises(ValidationError) as blank:
        MessageIn(author="a", text=" \n ")
    assert "after trimming" in str(blank.value)


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
