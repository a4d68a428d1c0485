"""Every command the lesson shows runs in the lab, or says it needs a cluster.

The lab serves the Kubernetes API to the real kubectl, so a `kubectl` command
is fine where the lab serves its verb (KUBECTL_SERVED, each tried against the
lab); one that uses a verb the lab refuses or cannot serve (debug, attach,
top, explain, auth, run, `create <kind>`…) must sit in a block whose
paragraph says "cluster only". A `lab` command must parse with the
lab's own CLI; anything else must be one of the host tools the lab is
explored with.
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
# kubectl's verbs the lab's API server serves, each run against the lab. Not here:
# attach (the lab refuses pods/attach), debug (kubectl 1.33 panics on the lab's
# answer: no ephemeral containers), top (no metrics API), explain (the lab's OpenAPI
# documents carry no schemas), auth (no access reviews), run and `create <kind>`
# (kubectl sends those as protobuf; the lab reads JSON only).
KUBECTL_SERVED = {
    "get", "describe", "apply", "create", "delete", "scale", "rollout", "wait", "logs",
    "exec", "cp", "port-forward", "drain", "cordon", "uncordon", "label", "annotate",
    "patch", "edit", "version", "config", "api-resources", "cluster-info",
}  # fmt: skip
# kubectl's global flags that take a value as the next word.
KUBECTL_VALUED_FLAGS = {"-n", "--namespace", "--context", "--kubeconfig", "-s", "--server"}
KUBECTL = re.compile(r"(?:^|[\s;|&(])kubectl\s+([^|;&)]*)")


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


def kubectl_verb(args: str) -> str:
    """The verb of a kubectl command line (after `kubectl`), its global flags skipped."""
    words = args.split()
    while words and words[0].startswith("-"):
        flag = words.pop(0)
        if flag in KUBECTL_VALUED_FLAGS and words:
            words.pop(0)
    return words[0] if words else ""


def kubectl_problem(args: str) -> str | None:
    """Why the lab cannot run this kubectl command, or None when it can."""
    verb = kubectl_verb(args)
    if verb not in KUBECTL_SERVED:
        return f"`kubectl {verb}`: the lab does not serve it"
    words = args.split()
    from_file = {"-f", "--filename", "-k", "--kustomize"}
    if verb == "create" and not any(w in from_file or w.startswith("--filename=") for w in words):
        return "`kubectl create <kind>`: the lab serves create -f/-k only"
    return None


def problem(command: Command, verbs: set[str]) -> str | None:
    line = command.line.removeprefix("sudo ").strip()
    calls = KUBECTL.findall(line)
    if calls:
        refused = [why for args in calls if (why := kubectl_problem(args))]
        if refused and not command.cluster_only:
            return f"{refused[0]}: mark its block cluster only"
        return None
    lab = LAB.match(line)
    if lab:
        verb = lab.group(1)
        if verb not in verbs:
            return f"`lab {verb}`: the lab has no such command"
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
        (
            "Try it:\n\n```sh\nkubectl -n clusterip-demo attach deploy/frontend\n```\n",
            "`kubectl attach`: the lab does not serve it: mark its block cluster only",
        ),
        ("```\n$ kubectl --context x top pods\nout\n```\n", "`kubectl top`"),
        ("```sh\nkubectl create namespace demo\n```\n", "create -f/-k only"),
        (
            '```sh\nPOD=$(kubectl get pod -o name | head -n 1) && kubectl debug "$POD"\n```\n',
            "`kubectl debug`",
        ),
        ("```\n$ sudo .venv/bin/python -m lab get pods\nout\n```\n", "no such command"),
        ("```\n$ sudo .venv/bin/python -m lab kill\n```\n", "refuses"),
        ("```\n$ sudo .venv/bin/python -m lab rules --bogus | cat\n```\n", "refuses"),
        ("```sh\nnmap 10.96.0.1\n```\n", "neither a lab command"),
    ],
)
def test_the_check_catches(doc: str, why: str) -> None:
    verbs = _verbs()
    problems = [p for c in lesson_commands(doc) if (p := problem(c, verbs))]
    assert len(problems) == 1 and why in problems[0], problems


def test_served_kubectl_and_marked_blocks_and_outputs_pass() -> None:
    doc = (
        "**Cluster only**: on a cluster.\n\n```sh\nkubectl debug pod/x --image=busybox\n```\n\n"
        "```\nNAME   TYPE\nbackend   ClusterIP\n```\n\n"
        "In the lab:\n\n```\n$ kubectl -n clusterip-demo get endpointslices\nNAME ...\n"
        "$ kubectl create -f docs/exercises/backend-service.yaml\nnamespace/step0 created\n"
        "$ kubectl -n clusterip-demo exec deploy/frontend -- cat /etc/resolv.conf\nsearch\n```\n\n"
        "```\n$ sudo .venv/bin/python -m lab rules\n```\n"
    )
    commands = lesson_commands(doc)
    assert [c.line for c in commands] == [
        "kubectl debug pod/x --image=busybox",
        "kubectl -n clusterip-demo get endpointslices",
        "kubectl create -f docs/exercises/backend-service.yaml",
        "kubectl -n clusterip-demo exec deploy/frontend -- cat /etc/resolv.conf",
        "sudo .venv/bin/python -m lab rules",
    ]
    assert not [c for c in commands if problem(c, _verbs())]


@pytest.mark.parametrize(
    ("args", "verb"),
    [
        ("-n clusterip-demo get pods", "get"),
        ("--context clusterip-lab -n x rollout restart deployment/backend", "rollout"),
        ("--namespace=x logs -f deploy/frontend", "logs"),
    ],
)
def test_the_verb_is_found_past_the_global_flags(args: str, verb: str) -> None:
    assert kubectl_verb(args) == verb
