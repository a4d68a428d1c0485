"""Fixtures for the manifest checks: each rendering (k8s_manifests.RENDERINGS), rendered
offline once per session; every test that reads them runs once per rendering."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from k8s_manifests import (
    EXTERNAL_SECRETS,
    RENDERINGS,
    WORKLOAD_KINDS,
    Rendering,
    all_containers,
    container_env,
    pod_spec,
    render_rendering,
)


@pytest.fixture(scope="session", params=RENDERINGS, ids=lambda r: r.name)
def rendering(request: pytest.FixtureRequest) -> Rendering:
    return request.param


@pytest.fixture(scope="session")
def rendered(
    rendering: Rendering, tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, Any]]:
    docs = render_rendering(rendering, tmp_path_factory.mktemp(rendering.name))
    assert docs, f"kubectl kustomize rendered nothing for {rendering.name}"
    return docs


@pytest.fixture(scope="session")
def by_kind(rendered: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    index: dict[str, dict[str, dict[str, Any]]] = {}
    for doc in rendered:
        index.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    return index


@pytest.fixture(scope="session")
def workloads(rendered: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in rendered if doc["kind"] in WORKLOAD_KINDS}


@pytest.fixture(scope="session")
def config_maps(by_kind) -> dict[str, dict[str, str]]:
    return {name: doc.get("data", {}) for name, doc in by_kind.get("ConfigMap", {}).items()}


@pytest.fixture(scope="session")
def secrets(by_kind, rendering: Rendering) -> dict[str, dict[str, str]]:
    """The rendered Secrets; production renders none and expects EXTERNAL_SECRETS."""
    decoded: dict[str, dict[str, str]] = {}
    if rendering.environment == "production":
        decoded.update(EXTERNAL_SECRETS)
    for name, doc in by_kind.get("Secret", {}).items():
        values = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
        values.update(doc.get("stringData") or {})
        decoded[name] = values
    return decoded


@pytest.fixture(scope="session")
def envs(workloads, config_maps, secrets) -> dict[tuple[str, str], dict[str, Any]]:
    """(workload, container) -> resolved environment, init containers included."""
    result: dict[tuple[str, str], dict[str, Any]] = {}
    for name, obj in workloads.items():
        for container in all_containers(pod_spec(obj)):
            result[(name, container["name"])] = container_env(container, config_maps, secrets)
    return result


@pytest.fixture(scope="session")
def hpas(by_kind) -> dict[str, dict[str, Any]]:
    return by_kind.get("HorizontalPodAutoscaler", {})
