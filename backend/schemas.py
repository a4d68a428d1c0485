"""What the API accepts and returns."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from common.contract import AUTHOR_MAX, TEXT_MAX


def _refuse_control_characters(value: str, allow_newlines: bool) -> str:
    for ch in value:
        category = unicodedata.category(ch)
        if ch == "\n" and allow_newlines:
            continue
        # Cc: control characters (NUL, ESC, …); Cs: lone surrogates, which
        # JSON can smuggle in as "\ud800" and no database can store.
        if category in ("Cc", "Cs"):
            raise ValueError(f"control character U+{ord(ch):04X} is not allowed")
    return value


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    author: str = Field(description="1 to 64 characters after trimming", examples=["Ada"])
    text: str = Field(description="1 to 1000 characters after trimming", examples=["Hello!"])

    @field_validator("author")
    @classmethod
    def _author(cls, value: str) -> str:
        value = _refuse_control_characters(value.strip(), allow_newlines=False)
        if not 1 <= len(value) <= AUTHOR_MAX:
            raise ValueError(f"must be 1 to {AUTHOR_MAX} characters after trimming")
        return value

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        value = value.replace("\r\n", "\n").strip()
        value = _refuse_control_characters(value, allow_newlines=True)
        if not 1 <= len(value) <= TEXT_MAX:
            raise ValueError(f"must be 1 to {TEXT_MAX} characters after trimming")
        return value


class MessageOut(BaseModel):
    id: int
    author: str
    text: str
    created_at: datetime
    written_by: str


CacheResult = Literal["hit", "miss", "off"]


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_before_id: int | None = Field(description="pass as before_id for the next, older page")
    cache: CacheResult = Field(description="hit: served by Redis; miss: from the database; off")
    cache_state: str = Field(description="up, down or disabled")


class DependencyStates(BaseModel):
    database: Literal["up", "down", "unknown"]
    cache: Literal["up", "down", "disabled"]


class Info(BaseModel):
    service: str
    version: str
    pod_name: str
    pod_ip: str
    node_name: str
    database: str
    cache: Literal["up", "down", "disabled"]
    status: Literal["ok", "degraded"]


class Stats(BaseModel):
    messages: int
    visits: int | None = Field(description="null while Redis is off or down")
    writes_by_pod: dict[str, int]


class Readiness(BaseModel):
    status: Literal["ready", "starting", "draining"]
    degraded: bool
    dependencies: DependencyStates


PageLimit = Annotated[int, Field(ge=1, le=100)]
