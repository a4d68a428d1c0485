"""common/version.py: the version the apps report is the project's."""

from __future__ import annotations

import tomllib
from pathlib import Path

from common.version import VERSION

REPO = Path(__file__).resolve().parents[2]


def test_version_matches_pyproject() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == VERSION
