"""The Idempotency-Key request header, declared once for both tiers' POST
routes: the same rules (common/contract.py) and the same OpenAPI entry."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header

from common.contract import IDEMPOTENCY_KEY_MAX, IDEMPOTENCY_KEY_PATTERN

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=IDEMPOTENCY_KEY_MAX,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Retrying with the same key returns the first result",
    ),
]
