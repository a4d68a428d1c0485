"""A password in a URL never reaches a log line: redact() masks it whole."""

from __future__ import annotations

from common.redaction import redact


def test_redact_masks_passwords_in_urls() -> None:
    line = "cannot reach mysql+pymysql://app:s3cr3t@mysql:3306/app and redis://:pw@redis:6379/0"
    cleaned = redact(line)
    assert "s3cr3t" not in cleaned and "pw@" not in cleaned
    assert "mysql+pymysql://app:***@mysql:3306/app" in cleaned


def test_redact_masks_a_password_with_an_at_sign_whole() -> None:
    line = "cannot reach mysql+pymysql://app:p@ss@w0rd@mysql:3306/app?x=a@b then redis://:a@b@r/0"
    cleaned = redact(line)
    assert "@ss" not in cleaned and "w0rd" not in cleaned
    assert "mysql+pymysql://app:***@mysql:3306/app?x=a@b" in cleaned
    assert "redis://:***@r/0" in cleaned


def test_text_without_an_at_sign_is_returned_as_is() -> None:
    line = "GET /api/messages?page=2"
    assert redact(line) is line
