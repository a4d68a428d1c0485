"""The README and docs say only what exists: make targets, scripts, files and links."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.M | re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")
# Paths in commands that name something of this repository.
REPO_PATH = re.compile(
    r"(?<![\w/.-])((?:k8s|backend|frontend|common|scripts|bench|lab|tests|docs|\.ci)/[\w./-]*)"
)


def make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([a-zA-Z0-9_-]+):", text, re.M))


def commands(doc: Path) -> list[str]:
    lines: list[str] = []
    for block in FENCE.findall(doc.read_text()):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                lines.append(line)
    return lines


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_make_targets_in_code_blocks_exist(doc: Path) -> None:
    targets = make_targets()
    for line in commands(doc):
        for target in re.findall(r"(?:^|[;&|]\s*|sudo\s+)make\s+([a-zA-Z0-9_-]+)", line):
            assert target in targets, f"{doc.name}: `{line}` names no Makefile target"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_repo_paths_in_code_blocks_exist(doc: Path) -> None:
    for line in commands(doc):
        for path in REPO_PATH.findall(line):
            clean = path.rstrip(".,:;")
            assert (REPO / clean).exists(), f"{doc.name}: `{line}` names missing {clean}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_inside_the_repo_resolve(doc: Path) -> None:
    for target in LINK.findall(doc.read_text()):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0]
        assert (doc.parent / path).exists(), f"{doc.name}: link to {target} is broken"


def test_the_checks_can_fail(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("```sh\nmake no-such-target\n```\n[a](missing.md)\n")
    assert "no-such-target" not in make_targets()
    assert [t for t in LINK.findall(doc.read_text()) if not (tmp_path / t).exists()]


def test_quick_start_is_the_two_commands() -> None:
    readme = (REPO / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = FENCE.findall(quick)[0]
    assert [line.split("#", 1)[0].strip() for line in block.strip().splitlines()] == [
        "make run",
        "make test",
    ]
