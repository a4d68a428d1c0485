"""ConfigMaps and Secrets as the kubelet reads them: lab/sources/configdata.py. Root-free."""

from __future__ import annotations

import base64
from typing import Any

from lab.sources.configdata import config_maps, secrets
from tests.lab import apicluster as api


def _store() -> Any:
    store = api.cluster()
    api.create(store, "namespaces", {"metadata": {"name": "app"}})
    settings = {"metadata": {"name": "settings", "namespace": "app"}, "data": {"LOG": "info"}}
    api.create(store, "configmaps", settings)
    api.create(store, "configmaps", {"metadata": {"name": "settings"}, "data": {"LOG": "debug"}})
    api.create(store, "configmaps", {"metadata": {"name": "empty", "namespace": "app"}})
    mysql = {
        "metadata": {"name": "mysql", "namespace": "app"},
        "data": {"MYSQL_USER": base64.b64encode(b"app").decode()},
        # Written as text; the API server keeps it only base64-encoded in `data`.
        "stringData": {"MYSQL_PASSWORD": "s3cr\u00e9t"},
    }
    api.create(store, "secrets", mysql)
    return store


def test_config_maps_by_namespace_and_name() -> None:
    found = config_maps(api.listed(_store(), "configmaps"))
    assert found["app"]["settings"] == {"LOG": "info"}
    assert found["default"]["settings"] == {"LOG": "debug"}
    assert found["app"]["empty"] == {}


def test_secrets_decoded_string_data_included() -> None:
    store = _store()
    stored = store.get(api.SECRETS, "app", "mysql")
    assert "stringData" not in stored  # what the translation reads is `data` alone
    found = secrets(api.listed(store, "secrets"))
    assert found["app"]["mysql"] == {"MYSQL_USER": "app", "MYSQL_PASSWORD": "s3cr\u00e9t"}


def test_a_binary_secret_value_keeps_its_bytes() -> None:
    raw = b"\xff\x00key"
    secret = {
        "metadata": {"name": "tls", "namespace": "app"},
        "data": {"key": base64.b64encode(raw).decode()},
    }
    value = secrets([secret])["app"]["tls"]["key"]
    assert value.encode("utf-8", "surrogateescape") == raw
