"""Every command the lesson shows runs in the lab, or says it needs a cluster.

A `lab` command must parse with the lab's own CLI (its verb, options and, for
`get`, a kind it prints); a `kubectl` command must sit in a block whose
paragraph says "cluster only"; anything else must be one of the host tools the
lab is explored with.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.cli import parser

REPO = Path(__file__).resolve().parents[2]
LESSON = REPO / "docs" / "lesson.md"
FENCE = re.compile(r"^```([a-z]*)\n(.*?)^```", re.M | re.S)
LAB = re.compile(r"^(?:\.venv/bin/)?python3? -m lab\s+(\S+)\s*(\S*)")
# Run on the lab's host, as the lesson does: these exist wherever the lab runs.
HOST_TOOLS = {"iptables", "nft", "ip", "curl", "make", "kill", "cat"}
# The kinds `lab get` knows (lab/cli.py's cmd_get).
LAB_GET_KINDS = {"pods", "po", "svc", "services", "endpointslices", "eps", "all", "-o"}


@dataclass(frozen=True)
class Command:
    line: str
    cluster_only: bool


def _paragraph_before(text: str, at: int) -> str:
    """The prose paragraph just above a fence (skipping other fences in between)."""
    before = FENCE.sub("", text[:at]).rstrip()
    return before.rsplit("\n\n", 1)[-1]


def lesson_commands(text: str) -> list[Command]:
    found: list[Command] = []
    for match in FENCE.finditer(text):
        language, body = match.group(1), match.group(2)
        if language in ("yaml", "json"):
            continue
        lines = body.splitlines()
        prompted = any(line.startswith("$ ") for line in lines)
        if not prompted and language != "sh":
            continue  # an output block
        marked = "cluster only" in _paragraph_before(text, match.start()).lower()
        for line in lines:
            if prompted and not line.startswith("$ "):
                continue  # what the command printed
            command = line.removeprefix("$ ").split(" #", 1)[0].strip()
            if command:
                found.append(Command(command, marked))
    return found


def problem(command: Command, verbs: set[str]) -> str | None:
    line = command.line.removeprefix("sudo ").strip()
    if "kubectl" in line:
        return None if command.cluster_only else "a kubectl command not marked cluster only"
    lab = LAB.match(line)
    if lab:
        verb, kind = lab.groups()
        if verb not in verbs:
            return f"`lab {verb}`: the lab has no such command"
        if verb == "get" and kind and kind not in LAB_GET_KINDS:
            return f"`lab get {kind}`: the lab cannot get that"
        return _refused_by_the_cli(line)
    first = shlex.split(line)[0]
    if first in HOST_TOOLS:
        return None
    return "neither a lab command nor a host tool, and not marked cluster only"


def _refused_by_the_cli(line: str) -> str | None:
    """Why the lab's argument parser refuses the command (before any pipe), or None."""
    segment = re.split(r"\s(?:\||&&|\|\||;)\s", line, maxsplit=1)[0]
    words = shlex.split(segment)
    argv = words[words.index("lab") + 1 :]
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            parser().parse_args(argv)
    except SystemExit:
        return f"the lab's CLI refuses `{' '.join(argv)}`: {stderr.getvalue().strip()[-120:]}"
    return None


def _verbs() -> set[str]:
    sub = next(a for a in parser()._actions if a.dest == "command")
    return set(sub.choices)  # type: ignore[arg-type]


def test_every_lesson_command_runs_in_the_lab_or_is_marked_cluster_only() -> None:
    verbs = _verbs()
    commands = lesson_commands(LESSON.read_text())
    assert len(commands) > 15, "the lesson's commands were not found"
    problems = [f"{c.line}: {p}" for c in commands if (p := problem(c, verbs))]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        ("Try it:\n\n```sh\nkubectl get pods\n```\n", "not marked cluster only"),
        ("```\n$ sudo .venv/bin/python -m lab describe pod\nout\n```\n", "no such command"),
        ("```\n$ sudo .venv/bin/python -m lab get nodes\n```\n", "cannot get that"),
        ("```\n$ sudo .venv/bin/python -m lab scale deployment/x\n```\n", "refuses"),
        ("```\n$ sudo .venv/bin/python -m lab apply --dry-run | cat\n```\n", "refuses"),
        ("```sh\nnmap 10.96.0.1\n```\n", "neither a lab command"),
    ],
)
def test_the_check_catches(doc: str, why: str) -> None:
    verbs = _verbs()
    problems = [p for c in lesson_commands(doc) if (p := problem(c, verbs))]
    assert len(problems) == 1 and why in problems[0]


def test_marked_blocks_and_outputs_pass() -> None:
    doc = (
        "**Cluster only**: on a cluster.\n\n```sh\nkubectl get svc\n```\n\n"
        "```\nNAME   TYPE\nbackend   ClusterIP\n```\n\n"
        "```\n$ sudo .venv/bin/python -m lab get endpointslices\nNAME ...\n```\n"
    )
    commands = lesson_commands(doc)
    assert [c.line for c in commands] == [
        "kubectl get svc",
        "sudo .venv/bin/python -m lab get endpointslices",
    ]
    assert not [c for c in commands if problem(c, _verbs())]
