"""frontend/config.py: the settings, their local defaults and the refusals that stop the start."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from frontend.config import FrontendSettings


def test_local_defaults(clean_env: pytest.MonkeyPatch) -> None:
    settings = FrontendSettings()
    assert settings.backend_url == "http://127.0.0.1:8000"
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    # Below the backend server's 30 s keep-alive timeout.
    assert settings.backend_keepalive_expiry_seconds == 20
    assert settings.backend_keepalive_expiry_seconds < settings.keepalive_timeout_seconds
    assert (settings.spread_default, settings.spread_max) == (30, 200)


def test_the_kubernetes_value_names_a_service(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BACKEND_URL", "http://backend:8000/")
    settings = FrontendSettings()
    assert settings.backend_url == "http://backend:8000"
    assert (settings.backend_host, settings.backend_port) == ("backend", 8000)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BACKEND_URL", "backend:8000"),
        ("BACKEND_URL", "ftp://backend"),
        ("SPREAD_DEFAULT", "500"),
        ("BACKEND_KEEPALIVE_EXPIRY_SECONDS", "-1"),
    ],
)
def test_bad_settings_stop_the_start(clean_env: pytest.MonkeyPatch, name: str, value: str) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ValidationError):
        FrontendSettings()
