"""mypy, strict, on the code that ships (backend/, frontend/, common/): `make lint` runs
it, and CI runs `make lint` (.ci/run ends in `make lint`, then `make test`)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_mypy_is_strict_on_the_shipped_packages() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["strict"] is True
    assert set(config["files"]) == {"backend", "frontend", "common"}
    # No blanket escape hatches: an ignore is per line, with its error code.
    assert not {"ignore_errors", "ignore_missing_imports", "disable_error_code"} & set(config)
    assert "overrides" not in config


def test_make_lint_runs_mypy_and_ci_runs_make_lint() -> None:
    makefile = (REPO / "Makefile").read_text()
    lint = re.search(r"^lint:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert lint and "-m mypy" in lint.group(1)
    # CI ends in the linters, then the README's test command as written.
    last = (REPO / ".ci" / "run").read_text().strip().splitlines()[-2:]
    assert last == ["make lint", "make test"]


def test_every_type_ignore_names_its_error_code() -> None:
    bare = [
        f"{path.relative_to(REPO)}:{n}"
        for package in ("backend", "frontend", "common")
        for path in (REPO / package).rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"#\s*type:\s*ignore(?!\[)", line)
    ]
    assert bare == []


def test_mypy_rejects_an_untyped_function(tmp_path: Path) -> None:
    """The same strictness as the config, on a module that breaks it."""
    bad = tmp_path / "bad.py"
    bad.write_text("def add(a, b):\n    return a + b\n")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(bad)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout
    assert "no-untyped-def" in result.stdout
