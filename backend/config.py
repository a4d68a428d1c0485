"""Backend settings, read from the environment once at start."""

from __future__ import annotations

from functools import cached_property

from pydantic import Field, SecretStr
from sqlalchemy.engine import URL, make_url

from common.settings import CommonSettings

SERVICE_NAME = "backend"


class BackendSettings(CommonSettings):
    port: int = Field(default=8000, ge=1, le=65535)
    # The embedded default lets `make run` work with no server at all.
    database_url: str = "sqlite:///var/guestbook.db"
    # Kept apart from the URL so a password with `@` or `/` needs no escaping
    # and the URL can live in a ConfigMap while this comes from a Secret.
    database_password: SecretStr | None = None
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=0, ge=0)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    db_pool_recycle_seconds: int = Field(default=280, ge=1)
    db_ping_after_idle_seconds: float = Field(default=1.0, ge=0)
    db_connect_timeout_seconds: int = Field(default=3, ge=1)
    db_statement_timeout_seconds: int = Field(default=10, ge=1)
    # Empty means no Redis: the backend runs on the database alone.
    redis_url: str = ""
    redis_timeout_seconds: float = Field(default=0.25, gt=0)
    cache_ttl_seconds: int = Field(default=60, ge=1)
    rate_limit_writes: int = Field(default=30, ge=1)
    rate_limit_window_seconds: int = Field(default=60, ge=1)
    # An Idempotency-Key is honoured at least this long; the clean-up then
    # deletes at most `idempotency_cleanup_batch` expired keys per pass.
    idempotency_key_retention_seconds: int = Field(default=86_400, ge=1)
    idempotency_cleanup_interval_seconds: float = Field(default=60.0, gt=0)
    idempotency_cleanup_batch: int = Field(default=500, ge=1)
    max_body_bytes: int = Field(default=16_384, ge=1024)
    health_interval_seconds: float = Field(default=2.0, gt=0)

    @cached_property
    def sqlalchemy_url(self) -> URL:
        url = make_url(self.database_url)
        if self.database_password is not None:
            url = url.set(password=self.database_password.get_secret_value())
        if url.get_backend_name() == "mysql" and "charset" not in url.query:
            # utf8mb4, or MySQL mangles emoji and other 4-byte characters.
            url = url.update_query_dict({"charset": "utf8mb4"})
        return url

    @property
    def database_kind(self) -> str:
        return self.sqlalchemy_url.get_backend_name()
