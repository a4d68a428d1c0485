"""A tier's command as the project's one Dockerfile gives it to `docker run`.

Both app images build from one Dockerfile; the build argument TIER picks the stage named
for the tier, which starts FROM the stages both tiers share. The lab reads the command
from that stage (and the stages it starts from, as Docker inherits them), so the
processes it starts and the images cannot disagree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lab.manifests import ManifestError


@dataclass(frozen=True)
class Stage:
    """One FROM … [AS name] block: the earlier stage it starts from (None: an image), and
    the command it sets, if any."""

    parent: str | None
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments and blanks dropped."""
    found: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        part = line.removesuffix("\\").strip()
        current = f"{current} {part}".strip()
        if not line.endswith("\\"):
            name, _, args = current.partition(" ")
            found.append((name.upper(), args.strip()))
            current = ""
    return found


def stages(text: str) -> dict[str, Stage]:
    """The named stages (`FROM base AS name`) with the exec-form ENTRYPOINT/CMD each sets."""
    named: dict[str, Stage] = {}
    current: tuple[str, Stage] | None = None
    for name, args in instructions(text):
        if name == "FROM":
            words = args.split()
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            # Only an earlier stage can be a base: that also rules out a loop.
            current = (alias, Stage(words[0] if words[0] in named else None))
        elif name in ("ENTRYPOINT", "CMD") and current is not None:
            if not args.startswith("["):
                raise ManifestError(f"Dockerfile: {name} {args}: only the exec form is read")
            value = [str(v) for v in json.loads(args)]
            alias, stage = current
            if name == "ENTRYPOINT":
                stage = Stage(stage.parent, entrypoint=value, cmd=None)
            else:
                stage = Stage(stage.parent, entrypoint=stage.entrypoint, cmd=value)
            current = (alias, stage)
        else:
            continue
        if current[0]:
            named[current[0]] = current[1]
    return named


def _command(named: dict[str, Stage], name: str) -> tuple[list[str], list[str]]:
    """(ENTRYPOINT, CMD) of a stage: its own, else its base stage's, as Docker inherits them;
    a stage's own ENTRYPOINT drops the CMD it would have inherited."""
    stage = named[name]
    entry, cmd = _command(named, stage.parent) if stage.parent else ([], [])
    if stage.entrypoint is not None:
        entry, cmd = stage.entrypoint, []
    if stage.cmd is not None:
        cmd = stage.cmd
    return entry, cmd


def tier_command(path: Path, tier: str) -> list[str]:
    """ENTRYPOINT + CMD of the stage named `tier` in the Dockerfile at `path`."""
    if not path.exists():
        raise ManifestError(f"image clusterip-demo/{tier}: no {path} to read its CMD from")
    named = stages(path.read_text())
    if tier not in named:
        raise ManifestError(f"{path}: no stage named {tier!r} (FROM … AS {tier})")
    entry, cmd = _command(named, tier)
    if not entry and not cmd:
        raise ManifestError(f"{path}: stage {tier!r} has no exec-form ENTRYPOINT or CMD")
    return entry + cmd
