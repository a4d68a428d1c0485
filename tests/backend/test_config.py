"""backend/config.py: the database URL and password, DATABASE_PASSWORD_FILE, the
refusal of the shipped development password, the local defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from backend.config import SHIPPED_DEVELOPMENT_PASSWORD, BackendSettings, load_settings

REPO = Path(__file__).resolve().parents[2]
URL = "mysql+pymysql://app@mysql:3306/app"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "DATABASE_PASSWORD", "DATABASE_PASSWORD_FILE", "ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", URL)


def test_the_constant_is_the_password_shipped_for_development() -> None:
    shipped = (REPO / "k8s" / "development" / "mysql-password").read_text()
    assert shipped == SHIPPED_DEVELOPMENT_PASSWORD  # no trailing newline either


def test_password_from_a_file_drops_trailing_newlines(monkeypatch, tmp_path: Path) -> None:
    secret = tmp_path / "MYSQL_PASSWORD"
    secret.write_text(" p@ss/w:rd \r\n\n")
    monkeypatch.setenv("DATABASE_PASSWORD_FILE", str(secret))
    assert BackendSettings().sqlalchemy_url.password == " p@ss/w:rd "


def test_file_and_variable_together_are_refused(monkeypatch, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("one")
    monkeypatch.setenv("DATABASE_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("DATABASE_PASSWORD", "two")
    with pytest.raises(ValidationError, match="not both"):
        BackendSettings()


def test_an_unreadable_password_says_what_without_the_bytes(monkeypatch, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_bytes(b"\xffsecret")
    monkeypatch.setenv("DATABASE_PASSWORD_FILE", str(secret))
    with pytest.raises(SystemExit, match="not UTF-8 text") as raised:
        load_settings()
    message = str(raised.value)
    assert message.endswith(f"DATABASE_PASSWORD_FILE={secret}: not UTF-8 text"), message


def test_a_malformed_url_is_a_clear_refusal(monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "not a url")
    with pytest.raises(SystemExit, match="DATABASE_URL is not a database URL"):
        load_settings()


def test_a_missing_file_is_named(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_PASSWORD_FILE", str(tmp_path / "absent"))
    with pytest.raises(SystemExit, match=r"refusing to start: DATABASE_PASSWORD_FILE=.*absent"):
        load_settings()


@pytest.mark.parametrize(
    ("where", "environment", "refused"),
    [
        ("variable", None, True),
        ("variable", "production", True),
        ("url", None, True),
        ("file", "staging", True),
        ("variable", "development", False),
        ("file", " Development ", False),
    ],
)
def test_the_development_password_needs_the_development_setting(
    monkeypatch, tmp_path: Path, where: str, environment: str | None, refused: bool
) -> None:
    if where == "variable":
        monkeypatch.setenv("DATABASE_PASSWORD", SHIPPED_DEVELOPMENT_PASSWORD)
    elif where == "url":
        monkeypatch.setenv(
            "DATABASE_URL", URL.replace("app@", f"app:{SHIPPED_DEVELOPMENT_PASSWORD}@")
        )
    else:
        secret = tmp_path / "pw"
        secret.write_text(SHIPPED_DEVELOPMENT_PASSWORD + "\n")
        monkeypatch.setenv("DATABASE_PASSWORD_FILE", str(secret))
    if environment is not None:
        monkeypatch.setenv("ENVIRONMENT", environment)
    if refused:
        with pytest.raises(SystemExit) as raised:
            load_settings()
        message = str(raised.value)
        assert "ENVIRONMENT=development" in message
        assert SHIPPED_DEVELOPMENT_PASSWORD not in message
    else:
        assert load_settings().sqlalchemy_url.password == SHIPPED_DEVELOPMENT_PASSWORD


def test_another_password_needs_no_setting(monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_PASSWORD", "a-real-one")
    assert BackendSettings().environment == "production"
    assert BackendSettings().sqlalchemy_url.password == "a-real-one"


def test_password_from_its_own_variable_needs_no_escaping(monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql+pymysql://app@mysql:3306/app")
    monkeypatch.setenv("DATABASE_PASSWORD", "p@ss/w:rd")
    settings = BackendSettings()
    url = settings.sqlalchemy_url
    assert url.password == "p@ss/w:rd"
    assert url.host == "mysql"
    assert url.query["charset"] == "utf8mb4"
    assert "p@ss" not in url.render_as_string(hide_password=True)
    assert settings.database_kind == "mysql"


def test_a_password_is_not_put_into_a_sqlite_url(monkeypatch) -> None:
    # A pod switched to SQLite keeps its Secret: the URL must stay valid.
    monkeypatch.setenv("DATABASE_URL", "sqlite:////tmp/guestbook.db")
    monkeypatch.setenv("DATABASE_PASSWORD", "secret")
    url = BackendSettings().sqlalchemy_url
    assert url.password is None
    assert url.database == "/tmp/guestbook.db"


def test_local_default_is_sqlite_without_redis(monkeypatch) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "DATABASE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    settings = BackendSettings()
    assert settings.database_kind == "sqlite"
    assert settings.redis_url == ""
