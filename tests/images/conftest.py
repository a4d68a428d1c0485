"""The project's images, run the way the rendered manifests run them.

Needs a container engine (Docker or podman); `.ci/run` starts one and builds the
images (on a stand-in python base: Docker Hub cannot be reached there) and the
stand-in MySQL and Redis images. Without an engine these tests skip, and under
CI=true they fail.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.engine import Engine, detect, project_images
from lab.manifests import Manifests, load
from tests.conftest import missing
from tests.support import host_state
from tests.support.containers import REPO, PodRunner

BASE_LABEL = "org.opencontainers.image.base.name"  # set by scripts/build-images.sh


@pytest.fixture(scope="session")
def engine() -> Engine:
    found = detect(REPO)
    if found is None:
        missing(
            "no container engine answers (start Docker, or `sudo scripts/docker-engine.sh start`)"
        )
    assert found is not None
    return found


@pytest.fixture(scope="session")
def app_images(engine: Engine) -> dict[str, str]:
    """clusterip-demo/{backend,frontend}:<the kustomization's tag>, built from this
    checkout's one Dockerfile by `make images`'s script.

    Built every session, not only when missing: an image left by another checkout would
    pass for this one. The layer cache makes the rebuild of unchanged code a second.
    """
    refs = dict(zip(("backend", "frontend"), project_images(REPO), strict=True))
    env = dict(os.environ)
    if "PYTHON_IMAGE" not in env and engine.has_image(refs["backend"]):
        # The base the present image was built on: a stand-in where Docker Hub is out of reach.
        env["PYTHON_IMAGE"] = engine(
            "image",
            "inspect",
            "--format",
            f'{{{{ index .Config.Labels "{BASE_LABEL}" }}}}',
            refs["backend"],
        )
    subprocess.run(
        [str(REPO / "scripts" / "build-images.sh")],
        check=True,
        timeout=900,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    return refs


@pytest.fixture(scope="session")
def manifests() -> Manifests:
    return load()


@pytest.fixture(scope="session")
def standin_images(engine: Engine, manifests: Manifests) -> dict[str, str]:
    """The mysql and redis images the manifests name, present as stand-ins (or the real ones)."""
    found = {}
    for workload in manifests.workloads.values():
        image = workload.template.containers[0].image
        if image.startswith(("mysql:", "redis:")):
            if not engine.has_image(image):
                missing(f"{image} is not on this engine: sudo scripts/standin-images.sh")
            found[image.split(":")[0]] = image
    return found


@pytest.fixture(scope="module")
def host_unchanged() -> Iterator[None]:
    """Firewall, ip_forward, links, routes, netns and mounts as before the module."""
    before = host_state.snapshot()
    yield
    assert not host_state.differences(before, host_state.snapshot())


@pytest.fixture(scope="module")
def pods(
    engine: Engine,
    manifests: Manifests,
    app_images: dict[str, str],
    standin_images: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    host_unchanged: None,
) -> Iterator[PodRunner]:
    workdir: Path = tmp_path_factory.mktemp("pods")
    runner = PodRunner(engine, manifests, workdir)
    yield runner
    runner.close()
