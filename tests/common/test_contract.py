"""The limits both tiers share (common/contract.py) are the ones each tier applies."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from common.contract import AUTHOR_MAX, IDEMPOTENCY_KEY_PATTERN, MAX_ID, TEXT_MAX
from common.message_models import MessageIn
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


def _openapi(tier: str) -> dict:
    if tier == "backend":
        from backend.main import create_app
    else:
        from frontend.main import create_app
    return create_app().openapi()


@pytest.mark.parametrize("tier", ["backend", "frontend"])
def test_the_openapi_documents_the_real_errors(tier: str) -> None:
    doc = _openapi(tier)
    schemas = doc["components"]["schemas"]
    # The real error body, not FastAPI's default 422 shape.
    assert "HTTPValidationError" not in schemas
    assert {"error", "message"} <= set(schemas["ErrorBody"]["required"])
    post = doc["paths"]["/api/messages"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/MessageIn"
    }
    for status in ("400", "409", "413", "415", "422", "429", "503"):
        content = post["responses"][status]["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/ErrorBody"}, status
    retry_after = post["responses"]["429"]["headers"]["Retry-After"]
    assert retry_after["required"] is True and retry_after["schema"]["type"] == "integer"
    assert schemas["MessageIn"]["properties"]["author"]["maxLength"] == AUTHOR_MAX


def test_the_frontend_api_is_typed() -> None:
    paths = _openapi("frontend")["paths"]
    listing = {p["name"]: p["schema"] for p in paths["/api/messages"]["get"]["parameters"]}
    assert listing["limit"]["type"] == "integer"
    n = paths["/api/spread"]["get"]["parameters"][0]["schema"]["anyOf"][0]
    assert (n["type"], n["minimum"], n["maximum"]) == ("integer", 1, 200)
    for path, model in (("/api/route", "RouteView"), ("/api/spread", "SpreadView")):
        ok = paths[path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": f"#/components/schemas/{model}"}
