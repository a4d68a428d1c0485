"""common/idempotency_key.py: one declaration of the header, the same rules
and OpenAPI entry wherever a route takes it."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from common.contract import IDEMPOTENCY_KEY_MAX
from common.idempotency_key import IdempotencyKeyHeader


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/write")
    async def write(idempotency_key: IdempotencyKeyHeader = None) -> dict[str, str | None]:
        return {"key": idempotency_key}

    return app


def test_a_good_key_arrives_and_no_key_is_none() -> None:
    client = TestClient(_app())
    assert client.post("/write", headers={"Idempotency-Key": "a.b:c-1_2"}).json() == {
        "key": "a.b:c-1_2"
    }
    assert client.post("/write").json() == {"key": None}


def test_a_key_out_of_shape_is_refused() -> None:
    client = TestClient(_app())
    for bad in ("has space", "x" * (IDEMPOTENCY_KEY_MAX + 1), "a/b"):
        assert client.post("/write", headers={"Idempotency-Key": bad}).status_code == 422


def test_the_schema_names_the_header_with_its_rules() -> None:
    operation = _app().openapi()["paths"]["/write"]["post"]
    (parameter,) = operation["parameters"]
    assert (parameter["name"], parameter["in"]) == ("Idempotency-Key", "header")
    assert parameter["schema"]["anyOf"][0]["maxLength"] == IDEMPOTENCY_KEY_MAX
