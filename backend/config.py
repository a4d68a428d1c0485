"""Backend settings, read from the environment once at start."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, ValidationError, model_validator
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from common.settings import CommonSettings

SERVICE_NAME = "backend"

# The MySQL password shipped in k8s/development/mysql-password (a test keeps the two
# equal). Public, so a deployment that still uses it is open to anyone.
SHIPPED_DEVELOPMENT_PASSWORD = "app-dev-password-change-me"  # noqa: S105 (the known one, refused)
DEVELOPMENT = "development"

_REFUSAL = (
    "the database password is the development one shipped with clusterip-demo "
    "(k8s/development/mysql-password), which anyone can read. Set a real one: on "
    "Kubernetes, create the Secret mysql-credentials (k8s/overlays/production/README.md); "
    "with docker compose, point MYSQL_PASSWORD_SECRET at a file holding it; elsewhere, "
    "DATABASE_PASSWORD_FILE (a file) or DATABASE_PASSWORD. On a development setup, set "
    "ENVIRONMENT=development instead."
)


class BackendSettings(CommonSettings):
    # The embedded default lets `make run` work with no server at all.
    database_url: str = "sqlite:///var/guestbook.db"
    # "development" accepts the shipped development password; anything else (the
    # default) refuses it, so a copy deployed with the sample credentials stops at start.
    environment: str = "production"
    # Kept apart from the URL so a password with `@` or `/` needs no escaping
    # and the URL can live in a ConfigMap while this comes from a Secret.
    database_password: SecretStr | None = None
    # The same password as a file (a mounted Secret, a compose secret): preferred, since
    # a variable shows in `kubectl describe`, /proc/<pid>/environ and child processes.
    database_password_file: Path | None = None
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
    # How long each cached page is served, counted from when it was stored.
    cache_ttl_seconds: int = Field(default=60, ge=1)
    # Bounds on the page cache, whatever pages clients ask for: far below
    # Redis's maxmemory (64mb shipped, noeviction), so cache traffic never
    # fills Redis and nothing (the rate limit's counters above all) is evicted.
    cache_max_pages: int = Field(default=512, ge=1)
    cache_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    rate_limit_writes: int = Field(default=30, ge=1)
    rate_limit_window_seconds: int = Field(default=60, ge=1)
    # An Idempotency-Key is honoured at least this long; the clean-up then
    # deletes at most `idempotency_cleanup_batch` expired keys per pass.
    idempotency_key_retention_seconds: int = Field(default=86_400, ge=1)
    idempotency_cleanup_interval_seconds: float = Field(default=60.0, gt=0)
    idempotency_cleanup_batch: int = Field(default=500, ge=1)
    health_interval_seconds: float = Field(default=2.0, gt=0)

    @model_validator(mode="after")
    def _password(self) -> Self:
        # One validator, in this order: the file first, then the check on its content.
        self._read_password_file()
        try:
            password = self.sqlalchemy_url.password
        except ArgumentError as exc:
            raise ValueError(f"DATABASE_URL is not a database URL: {exc}") from None
        development = self.environment.strip().lower() == DEVELOPMENT
        if not development and password == SHIPPED_DEVELOPMENT_PASSWORD:
            raise ValueError(_REFUSAL)
        return self

    def _read_password_file(self) -> None:
        path = self.database_password_file
        if path is None:
            return
        if self.database_password is not None:
            raise ValueError("set DATABASE_PASSWORD or DATABASE_PASSWORD_FILE, not both")
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"DATABASE_PASSWORD_FILE={path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            # Said without the offending bytes: they are part of the password.
            raise ValueError(f"DATABASE_PASSWORD_FILE={path}: not UTF-8 text") from None
        # As the official MySQL image's file_env ($(< file)): trailing newlines are not
        # part of the password, so an editor's final newline does no harm.
        self.database_password = SecretStr(text.rstrip("\r\n"))

    @cached_property
    def sqlalchemy_url(self) -> URL:
        url = make_url(self.database_url)
        # SQLite has no password: a Secret still mounted after switching a pod to
        # SQLite must not turn the URL into an invalid one.
        if self.database_password is not None and url.get_backend_name() != "sqlite":
            url = url.set(password=self.database_password.get_secret_value())
        if url.get_backend_name() == "mysql" and "charset" not in url.query:
            # utf8mb4, or MySQL mangles emoji and other 4-byte characters.
            url = url.update_query_dict({"charset": "utf8mb4"})
        return url

    @property
    def database_kind(self) -> str:
        return self.sqlalchemy_url.get_backend_name()


def load_settings() -> BackendSettings:
    """The settings, or exit with what to fix: one line, no traceback, no secret value."""
    try:
        return BackendSettings()
    except ValidationError as exc:
        problems = "; ".join(
            (".".join(str(part) for part in error["loc"]).upper() + ": " if error["loc"] else "")
            + error["msg"].removeprefix("Value error, ")
            for error in exc.errors()
        )
        raise SystemExit(f"backend: refusing to start: {problems}") from None
