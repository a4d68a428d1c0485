"""The lesson's lab outputs are the capture run's files, byte for byte, and nothing else.

docs/lessoncapture/run.py (`sudo make lesson-capture`) writes docs/captures/NAME.txt:
a header naming the script, the proxy mode, the commit and the run, then each
command and what it printed. The lesson shows each in a marked region; these
tests fail when a region differs from its file, when a file lacks the run's
header or was not made by the run's code, or when the lesson shows a command's
output outside a capture region (an output typed or edited by hand).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from docs.lessoncapture import blocks

REPO = Path(__file__).resolve().parents[2]
# The capture run's code: run.py and the phases it calls (nodes.py: the three-node lab).
RUN_SOURCE = "".join(p.read_text() for p in sorted((REPO / "docs" / "lessoncapture").glob("*.py")))
FENCE = re.compile(r"^```([a-z]*)\n(.*?)^```\n", re.M | re.S)


@pytest.fixture(scope="module")
def captures() -> dict[str, blocks.Capture]:
    return blocks.load()


@pytest.fixture(scope="module")
def lesson() -> str:
    return blocks.LESSON.read_text(encoding="utf-8")


def test_every_capture_region_is_its_file_byte_for_byte(
    captures: dict[str, blocks.Capture], lesson: str
) -> None:
    shown = blocks.regions(lesson)
    assert len(shown) >= 20, "the lesson's capture regions were not found"
    for name, block in shown.items():
        assert name in captures, f"the lesson shows capture {name}, which has no file"
        assert block == blocks.fence(captures[name]), (
            f"the lesson's block {name} differs from docs/captures/{name}.txt: never edit "
            "either; run `sudo make lesson-capture` (or `python -m docs.lessoncapture.blocks` "
            "to paste the files again)"
        )
    assert blocks.fill(lesson, captures) == lesson


def test_every_capture_file_is_shown(captures: dict[str, blocks.Capture], lesson: str) -> None:
    assert set(captures) == set(blocks.regions(lesson))


def test_each_capture_file_was_written_by_the_capture_run(
    captures: dict[str, blocks.Capture],
) -> None:
    # One run per mode, one commit: a file added or redone by hand stands out.
    for mode in blocks.MODES:
        of_mode = [c for c in captures.values() if c.mode == mode]
        assert of_mode, f"nothing was captured in {mode} mode"
        assert len({(c.run, c.commit) for c in of_mode}) == 1, f"{mode}: captures of several runs"
    for name, capture in captures.items():
        # The run's code names each capture it makes; a rule listing's name says its mode.
        assert f'"{name}"' in RUN_SOURCE, f"{name}: docs/lessoncapture/ makes no such capture"
        mode = name.partition(".")[2]
        if mode:
            assert capture.mode == mode, f"{name} was captured in {capture.mode} mode"
        assert capture.commands, f"{name} holds no command"


def test_every_prompted_block_of_the_lesson_is_a_capture_or_cluster_only(lesson: str) -> None:
    outside = blocks.REGION.sub("", lesson)
    for match in FENCE.finditer(outside):
        body = match.group(2)
        if any(line.startswith("$ ") for line in body.splitlines()):
            raise AssertionError(f"an output block that is not a capture:\n{body[:300]}")


def test_no_note_of_a_pending_recapture_is_left(lesson: str) -> None:
    for stale in ("pending recapture", "until the next capture", "replaces this block", "re-print"):
        assert stale not in lesson.lower(), f"the lesson still says {stale!r}"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("$ ls\nout\n", "no header"),
        (
            "# captured by scripts/other.sh · x · proxy-mode iptables · lab commit abcdef1"
            " · run 2026-11-30T22:00:00Z\n$ ls\n",
            "not scripts/lesson-capture.sh",
        ),
        (
            "# captured by scripts/lesson-capture.sh · x · proxy-mode ipvs · lab commit abcdef1"
            " · run 2026-11-30T22:00:00Z\n$ ls\n",
            "unknown proxy mode",
        ),
        (
            "# captured by scripts/lesson-capture.sh · x · proxy-mode iptables · lab commit"
            " abcdef1 · run 2026-11-30T22:00:00Z\nls\n",
            "must start with",
        ),
    ],
)
def test_a_file_not_from_the_run_is_refused(text: str, why: str) -> None:
    with pytest.raises(blocks.CaptureError, match=why):
        blocks.parse(text)


def test_an_edited_block_is_caught_and_filled_back() -> None:
    capture = blocks.Capture("x", "iptables", "abcdef1", "2026-11-30T22:00:00Z", "$ ls\na\n")
    edited = "intro\n<!-- capture: x -->\n```\n$ ls\nb\n```\n<!-- /capture -->\nend\n"
    assert blocks.regions(edited)["x"] != blocks.fence(capture)
    filled = blocks.fill(edited, {"x": capture})
    assert blocks.regions(filled)["x"] == blocks.fence(capture)
    assert filled.startswith("intro\n") and filled.endswith("end\n")
    with pytest.raises(blocks.CaptureError, match="no file"):
        blocks.fill(edited, {})


def test_the_run_writes_what_the_command_printed_under_its_header(tmp_path: Path) -> None:
    # The driver's writing half, with a command that needs no lab and no root.
    from docs.lessoncapture.run import Run

    run = Run(tmp_path, tmp_path)
    run.mode = "nftables"
    run.capture("x", "printf 'a\\tb'", "echo err >&2")
    capture = blocks.parse((tmp_path / "x.txt").read_text(encoding="utf-8"))
    assert capture.body == "$ printf 'a\\tb'\na\tb\n$ echo err >&2\nerr\n"
    assert (capture.name, capture.mode, capture.commit) == ("x", "nftables", run.commit)
    assert capture.commands == ["printf 'a\\tb'", "echo err >&2"]


def test_the_three_node_phase_reads_which_pod_answered_from_each_node() -> None:
    # docs/lessoncapture/nodes.py checks each capture tells the lesson's story from
    # these lines (which-pod.py's output): the asking pod's node → each answer's node.
    from docs.lessoncapture.nodes import _answers, which_pod

    body = (
        f"$ {which_pod('frontend-a', 'local', 2)}\n"
        "from frontend-a 10.244.2.3 on lab-node-2\n"
        "local-1 no answer: timed out\nlocal-2 no answer: timed out\n"
        f"$ {which_pod('frontend-b', 'local', 2)}\n"
        "from frontend-b 10.244.1.5 on lab-node-1\n"
        "local-1 backend-x 10.244.1.3 on lab-node-1\nlocal-2 backend-y 10.244.3.2 on lab-node-3\n"
    )
    assert _answers(body, "local") == {
        "lab-node-2": ["-", "-"],
        "lab-node-1": ["lab-node-1", "lab-node-3"],
    }
    assert which_pod("frontend-a", "local", 2) == (
        "kubectl -n clusterip-demo exec -i frontend-a -- python - local 2"
        " < docs/exercises/which-pod.py"
    )
