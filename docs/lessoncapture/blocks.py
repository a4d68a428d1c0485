"""Capture files and the lesson's capture regions (no root: the docs tests use this).

A capture file, docs/captures/NAME.txt, is one header line written by the
capture run, then exactly what the reader sees: each command after `$ ` and
what it printed. The lesson shows it in a region

    <!-- capture: NAME -->
    ```
    $ command
    output
    ```
    <!-- /capture -->

whose fenced block is the file minus its header, byte for byte.
`python -m docs.lessoncapture.blocks` rewrites every region from its file.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CAPTURES = REPO / "docs" / "captures"
LESSON = REPO / "docs" / "lesson.md"
SCRIPT = "scripts/lesson-capture.sh"
MODES = ("iptables", "nftables")

HEADER = re.compile(
    r"^# captured by (?P<script>\S+) · (?P<name>[a-z0-9.-]+) · proxy-mode (?P<mode>\w+)"
    r" · lab commit (?P<commit>[0-9a-f]{7,40}) · run (?P<run>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\n"
)
REGION = re.compile(
    r"^<!-- capture: (?P<name>[a-z0-9.-]+) -->\n(?P<block>.*?)^<!-- /capture -->$", re.M | re.S
)


class CaptureError(ValueError):
    pass


@dataclass(frozen=True)
class Capture:
    name: str
    mode: str
    commit: str
    run: str
    body: str  # what the lesson shows: `$ command` lines and their output

    @property
    def commands(self) -> list[str]:
        return [line[2:] for line in self.body.splitlines() if line.startswith("$ ")]

    def text(self) -> str:
        return (
            f"# captured by {SCRIPT} · {self.name} · proxy-mode {self.mode}"
            f" · lab commit {self.commit} · run {self.run}\n{self.body}"
        )


def parse(text: str) -> Capture:
    header = HEADER.match(text)
    if header is None:
        raise CaptureError("no header line written by the capture run")
    if header["script"] != SCRIPT:
        raise CaptureError(f"written by {header['script']}, not {SCRIPT}")
    if header["mode"] not in MODES:
        raise CaptureError(f"unknown proxy mode {header['mode']!r}")
    body = text[header.end() :]
    if not body.startswith("$ ") or not body.endswith("\n"):
        raise CaptureError("the body must start with a `$ ` command and end with a newline")
    if "```" in body:
        raise CaptureError("a fence inside a capture would end the lesson's block")
    return Capture(header["name"], header["mode"], header["commit"], header["run"], body)


def load(directory: Path = CAPTURES) -> dict[str, Capture]:
    captures = {}
    for path in sorted(directory.glob("*.txt")):
        capture = parse(path.read_text(encoding="utf-8"))
        if capture.name != path.stem:
            raise CaptureError(f"{path.name} says it is {capture.name}")
        captures[capture.name] = capture
    return captures


def fence(capture: Capture) -> str:
    return f"```\n{capture.body}```\n"


def regions(text: str) -> dict[str, str]:
    """name → the fenced block between its markers, as the lesson has it now."""
    found: dict[str, str] = {}
    for match in REGION.finditer(text):
        if match["name"] in found:
            raise CaptureError(f"capture {match['name']} is shown twice")
        found[match["name"]] = match["block"]
    return found


def fill(text: str, captures: dict[str, Capture]) -> str:
    """The lesson with every capture region rewritten from its file."""
    missing = sorted(set(regions(text)) - set(captures))
    if missing:
        raise CaptureError(f"the lesson shows captures that have no file: {', '.join(missing)}")
    return REGION.sub(
        lambda m: f"<!-- capture: {m['name']} -->\n{fence(captures[m['name']])}<!-- /capture -->",
        text,
    )


def main() -> int:
    try:
        LESSON.write_text(fill(LESSON.read_text(encoding="utf-8"), load()), encoding="utf-8")
    except CaptureError as exc:
        print(f"lesson: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
