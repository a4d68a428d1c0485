"""One resolution for the whole project: uv.lock, with every requirement file exported
from it (scripts/lock.sh). The images install requirements/backend.txt and
requirements/frontend.txt, `make run` requirements/run.txt and the tests
requirements/dev.txt: a package two of them share must be the same release in both, or
the tests do not run what the images run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "requirements"
IMAGE_SETS = ("backend", "frontend", "run")
# `name==version ; marker \` at the start of a requirement, then its `--hash=` lines.
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def _pins(text: str) -> dict[tuple[str, str], str]:
    """(name, environment marker) -> version; a name can be pinned twice under
    different markers when the resolution forks (e.g. by Python version)."""
    pins = {}
    for line in text.splitlines():
        match = PIN.match(line)
        if match:
            name, version, marker = match.groups()
            pins[(name.lower(), (marker or "").strip())] = version
    return pins


def _disagreements(dev: str, image: str) -> list[str]:
    """Every pin of the image set that the dev set does not pin identically."""
    dev_pins = _pins(dev)
    found = []
    for (name, marker), version in sorted(_pins(image).items()):
        if dev_pins.get((name, marker)) != version:
            where = f"{name} ; {marker}" if marker else name
            found.append(f"{where}: dev {dev_pins.get((name, marker))}, image {version}")
    return found


def _read(name: str) -> str:
    return (REQUIREMENTS / f"{name}.txt").read_text()


@pytest.mark.parametrize("image_set", IMAGE_SETS)
def test_dev_set_pins_every_package_of_an_image_set_at_the_same_version(image_set):
    assert _pins(_read(image_set)), f"requirements/{image_set}.txt pins nothing"
    assert _disagreements(_read("dev"), _read(image_set)) == []


def test_a_version_disagreement_is_caught():
    dev = "anyio==4.16.0 \\\n    --hash=sha256:aa\npackaging==26.3 \\\n    --hash=sha256:bb\n"
    image = "anyio==4.16.0 \\\n    --hash=sha256:aa\npackaging==26.4 \\\n    --hash=sha256:cc\n"
    assert _disagreements(dev, image) == ["packaging: dev 26.3, image 26.4"]
    # A package the image needs and the tests never install is a disagreement too.
    assert _disagreements("", image) == [
        "anyio: dev None, image 4.16.0",
        "packaging: dev None, image 26.4",
    ]


@pytest.mark.parametrize("name", [*IMAGE_SETS, "dev"])
def test_every_requirement_is_pinned_with_hashes(name):
    """pip's --require-hashes (the Dockerfile) refuses a file with an unhashed line;
    this says which line, without an image build."""
    requirement = None
    hashes: dict[str, int] = {}
    for line in _read(name).splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("--hash=sha256:"):
            assert requirement, f"{name}.txt: a hash before any requirement"
            assert re.fullmatch(r"--hash=sha256:[0-9a-f]{64}( \\)?", stripped), line
            hashes[requirement] += 1
            continue
        match = PIN.match(line)
        assert match, f"{name}.txt: not an exact pin: {line!r}"
        requirement = line
        hashes[requirement] = 0
    assert hashes, f"{name}.txt is empty"
    assert [r for r, n in hashes.items() if n == 0] == []


def test_requirement_files_are_what_uv_lock_exports():
    """Nobody edits an exported file by hand, and uv.lock still satisfies
    pyproject.toml: `make lock` regenerates both (offline check)."""
    uv = Path(sys.executable).parent / "uv"
    assert uv.exists() or shutil.which("uv"), "uv is in requirements/dev.txt"
    result = subprocess.run(
        [str(REPO / "scripts" / "lock.sh"), "--check"],
        cwd=REPO,
        env={**os.environ, "UV": str(uv) if uv.exists() else "uv"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
