"""lab/dockerfile.py: a tier's command read from the stage named for it in the one Dockerfile."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.dockerfile import tier_command
from lab.manifests import REPO, ManifestError

TWO_TIERS = """\
ARG TIER
FROM python:3.11 AS builder
RUN echo build
FROM python:3.11 AS runtime
# a comment between instructions
ENTRYPOINT ["tini", \\
            "--"]
CMD ["python", "-m", "shared"]
FROM runtime AS backend
CMD ["python", "-m", "backend"]
FROM runtime AS frontend
EXPOSE 8080
FROM ${TIER}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    return path


def test_each_tier_gets_its_own_stage_command_over_the_shared_entrypoint(tmp_path: Path) -> None:
    path = _write(tmp_path, TWO_TIERS)
    assert tier_command(path, "backend") == ["tini", "--", "python", "-m", "backend"]
    # A stage that sets no CMD inherits its base stage's, as Docker does.
    assert tier_command(path, "frontend") == ["tini", "--", "python", "-m", "shared"]


def test_an_entrypoint_drops_the_inherited_cmd(tmp_path: Path) -> None:
    text = TWO_TIERS + 'FROM backend AS worker\nENTRYPOINT ["python", "-m", "worker"]\n'
    assert tier_command(_write(tmp_path, text), "worker") == ["python", "-m", "worker"]


def test_a_tier_without_a_stage_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no stage named 'worker'"):
        tier_command(_write(tmp_path, TWO_TIERS), "worker")


def test_a_stage_without_a_command_is_an_error(tmp_path: Path) -> None:
    text = "FROM python:3.11 AS backend\nEXPOSE 8000\n"
    with pytest.raises(ManifestError, match="no exec-form ENTRYPOINT or CMD"):
        tier_command(_write(tmp_path, text), "backend")


def test_a_shell_form_command_is_refused(tmp_path: Path) -> None:
    text = "FROM python:3.11 AS backend\nCMD python -m backend\n"
    with pytest.raises(ManifestError, match="only the exec form"):
        tier_command(_write(tmp_path, text), "backend")


def test_a_missing_dockerfile_is_named(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"no .* to read its CMD from"):
        tier_command(tmp_path / "Dockerfile", "backend")


@pytest.mark.parametrize("tier", ["backend", "frontend"])
def test_the_project_dockerfile_runs_each_tier_as_its_package(tier: str) -> None:
    assert tier_command(REPO / "Dockerfile", tier) == ["python", "-m", tier]
