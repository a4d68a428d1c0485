"""Supply chain of the GitHub workflows and the update bot: every action pinned to a
full commit (a tag can be moved to other code), every download checked against a pinned
checksum, and Renovate configured for each kind of dependency the project has."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
# owner/repo[/path]@<40 hex> # v1.2.3
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
DOWNLOAD = re.compile(r"\b(curl|wget)\b")
CHECKED = re.compile(r"\bsha256sum\b[^\n]*(--check|-c)\b")


def _steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def unpinned_actions(text: str) -> list[str]:
    """Every `uses:` not pinned to a full commit SHA, and every pin without the
    release it stands for in a comment (Renovate and readers need it)."""
    problems = []
    for line in text.splitlines():
        match = re.match(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", line)
        if not match:
            continue
        ref, rest = match.groups()
        if ref.startswith("./"):
            continue  # an action in this repository: pinned by the checkout itself
        if not PINNED.match(ref):
            problems.append(f"not pinned to a commit: {ref}")
        elif not re.match(r"^\s*#\s*v\d+(\.\d+)*", rest):
            problems.append(f"no '# vX.Y.Z' comment: {ref}")
    return problems


def unchecked_downloads(workflow: dict) -> list[str]:
    """Every `run:` step that downloads with curl or wget but checks no checksum."""
    return [
        step.get("name", step["run"].splitlines()[0])
        for step in _steps(workflow)
        if "run" in step and DOWNLOAD.search(step["run"]) and not CHECKED.search(step["run"])
    ]


def test_there_are_workflows() -> None:
    assert len(WORKFLOWS) >= 2, WORKFLOWS


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit(path: Path) -> None:
    text = path.read_text()
    assert "uses:" in text
    assert unpinned_actions(text) == []


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_download_is_checked_against_a_pinned_checksum(path: Path) -> None:
    workflow = yaml.safe_load(path.read_text())
    assert unchecked_downloads(workflow) == []
    # The checksums are written in the workflow, not fetched next to the download.
    for step in _steps(workflow):
        if "run" in step and DOWNLOAD.search(step["run"]):
            pinned = [v for v in step.get("env", {}).values() if re.fullmatch(r"[0-9a-f]{64}", v)]
            assert pinned, f"{step.get('name')}: no pinned sha256 in the step's env"


def test_the_checks_catch_a_tag_a_branch_and_an_unchecked_download() -> None:
    text = (
        "steps:\n"
        "  - uses: actions/checkout@v4\n"
        "  - uses: actions/setup-python@main\n"
        "  - uses: actions/cache@0123456789abcdef0123456789abcdef01234567\n"
        "  - uses: ./.github/actions/local\n"
    )
    assert unpinned_actions(text) == [
        "not pinned to a commit: actions/checkout@v4",
        "not pinned to a commit: actions/setup-python@main",
        "no '# vX.Y.Z' comment: actions/cache@0123456789abcdef0123456789abcdef01234567",
    ]
    workflow = {"jobs": {"j": {"steps": [{"name": "get", "run": "curl -fsSLo k https://x/k"}]}}}
    assert unchecked_downloads(workflow) == ["get"]
    workflow["jobs"]["j"]["steps"][0]["run"] += "\necho 'abc  k' | sha256sum --check"
    assert unchecked_downloads(workflow) == []


def test_ci_workflow_runs_make_lint_test() -> None:
    """GitHub runs what .ci/run runs, and .ci/run ends in `make lint`, then `make test`."""
    ci = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    runs = [step.get("run", "") for step in _steps(ci)]
    assert "bash .ci/run" in runs
    lines = (REPO / ".ci" / "run").read_text().strip().splitlines()
    assert lines[-2:] == ["make lint", "make test"]


def test_renovate_covers_the_lock_dockerfiles_kustomize_and_actions() -> None:
    config = json.loads((REPO / "renovate.json").read_text())
    assert {"pep621", "dockerfile", "kustomize", "kubernetes", "github-actions"} <= set(
        config["enabledManagers"]
    )
    # The exported requirement files follow uv.lock; a bot must not edit them alone.
    assert "pip_requirements" not in config["enabledManagers"]
    assert config["lockFileMaintenance"]["enabled"] is True
    assert any("lock.sh --export" in c for c in config["postUpgradeTasks"]["commands"])
    # Our own images are built here: no registry lookups for them.
    disabled = [r for r in config["packageRules"] if r.get("enabled") is False]
    assert any("clusterip-demo/backend" in r.get("matchDepNames", []) for r in disabled)
