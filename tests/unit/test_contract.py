"""The limits both tiers share (common/contract.py) are the ones each tier applies."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from backend.schemas import MessageIn
from common.contract import AUTHOR_MAX, IDEMPOTENCY_KEY_PATTERN, MAX_ID, TEXT_MAX
from frontend.guestbook import IDEMPOTENCY_KEY_SHAPE


def test_the_backend_accepts_exactly_the_shared_lengths() -> None:
    MessageIn(author="a" * AUTHOR_MAX, text="x" * TEXT_MAX)
    with pytest.raises(ValidationError):
        MessageIn(author="a" * (AUTHOR_MAX + 1), text="x")
    with pytest.raises(ValidationError):
        MessageIn(author="a", text="x" * (TEXT_MAX + 1))


@pytest.mark.parametrize(
    ("key", "valid"),
    [("a" * 128, True), ("a.b:c-d_9", True), ("a" * 129, False), ("", False), ("a b", False)],
)
def test_both_tiers_read_an_idempotency_key_alike(key: str, valid: bool) -> None:
    assert bool(IDEMPOTENCY_KEY_SHAPE.match(key)) is valid


def test_the_backend_documents_the_shared_key_shape_and_id_bound() -> None:
    from backend.main import create_app

    paths = create_app().openapi()["paths"]
    post = paths["/api/messages"]["post"]
    header = next(p for p in post["parameters"] if p["name"] == "Idempotency-Key")
    assert header["schema"]["anyOf"][0]["pattern"] == IDEMPOTENCY_KEY_PATTERN
    one = paths["/api/messages/{message_id}"]["get"]
    assert one["parameters"][0]["schema"]["maximum"] == MAX_ID
