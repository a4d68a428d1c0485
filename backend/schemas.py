"""What the API accepts and returns; a message's own shapes are shared (common/)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


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


ReadinessStatus = Literal["ready", "starting", "draining"]


class Readiness(BaseModel):
    status: ReadinessStatus
    degraded: bool
    dependencies: DependencyStates
