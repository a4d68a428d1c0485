"""The rule chains of both proxy modes, drawn from the lesson's captures: docs/img/rule-chains.svg.

The boxes hold the very lines `iptables -t nat -S` and `nft list` printed in the
lab (docs/captures/rules-*.txt, written by `sudo make lesson-capture`), only
wrapped to fit; nothing in the picture is typed by hand. Run `make diagrams` (or
`.venv/bin/python -m docs.diagrams.rule_chains`) after a capture;
tests/docs/test_diagrams.py fails while the committed SVG differs from this
file's output for the committed captures.
"""

from __future__ import annotations

import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from docs.diagrams.packet_path import ARROW, INK, MONO, MUTED, PAD, SANS, Line, Svg, code, head
from docs.lessoncapture import blocks

OUTPUT = Path(__file__).resolve().parents[1] / "img" / "rule-chains.svg"
WIDTH = 900
COLUMN = 425
SIZE = 10
# Characters that fit a box's width: rules in DejaVu Sans Mono at SIZE px, titles in
# bold sans at 11 px (packet_path's advance bounds).
FIT = int((COLUMN - 2 * PAD) / (SIZE * 0.61))
FIT_TITLE = int((COLUMN - 2 * PAD) / (11 * 0.62))
BACKEND = "clusterip-demo/backend"


class RulesNotFoundError(ValueError):
    """A capture lacks a rule the picture draws: recapture, or update this file."""


@dataclass(frozen=True)
class Box:
    title: str
    rules: list[str]


@dataclass(frozen=True)
class Mode:
    heading: str
    command: str
    boxes: list[Box]
    arrows: list[str]  # the label of the arrow below each box but the last


def _outputs(capture: blocks.Capture) -> dict[str, list[str]]:
    """command → the lines it printed."""
    found: dict[str, list[str]] = {}
    command = ""
    for line in capture.body.splitlines():
        if line.startswith("$ "):
            command = line[2:]
            found[command] = []
        else:
            found[command].append(line)
    return found


def _printed(capture: blocks.Capture) -> list[str]:
    return [line for lines in _outputs(capture).values() for line in lines]


def _one(lines: list[str], pattern: str, what: str) -> str:
    for line in lines:
        if re.search(pattern, line):
            return line.strip()
    raise RulesNotFoundError(f"no {what} in the capture")


def iptables(captures: dict[str, blocks.Capture]) -> Mode:
    services = _printed(captures["rules-services.iptables"])
    chains = list(_outputs(captures["rules-backend.iptables"]).values())
    svc, sep = chains[0], chains[1]
    picks = [line for line in svc if "CIP-SEP-" in line]
    if not picks:
        raise RulesNotFoundError("no endpoint jumps in the backend's chain")
    return Mode(
        "iptables mode (the default)",
        "iptables -t nat -S",
        [
            Box(
                "CIP-SERVICES: one rule per Service port",
                [_one(services, re.escape(f"{BACKEND}:http cluster IP"), "backend rule")],
            ),
            Box(f"{svc[0].split()[1]}: the backend's chain", picks),
            Box(
                f"{sep[0].split()[1]}: the first endpoint", [line for line in sep if "DNAT" in line]
            ),
        ],
        ["the ClusterIP and port match", "statistic: 1/3, then 1/2, then the rest"],
    )


def nft(captures: dict[str, blocks.Capture]) -> Mode:
    services = _printed(captures["rules-services.nftables"])
    chains = list(_outputs(captures["rules-backend.nftables"]).values())
    svc, endpoint = chains[0], chains[1]
    element = _one(services, re.escape(f"{BACKEND}/tcp/http"), "backend element").rstrip(",")
    return Mode(
        "nftables mode (GA since 1.33)",
        "nft list map / chain ip cip-kube-proxy",
        [
            Box("map service-ips: one lookup for every Service", [element]),
            Box(
                f"chain {_chain_name(svc)}",
                [_one(svc, r"numgen random mod", "numgen rule")],
            ),
            Box(
                f"chain {_chain_name(endpoint)}",
                [_one(endpoint, r"dnat to", "dnat rule")],
            ),
        ],
        ["ClusterIP . tcp . port found", "numgen random mod N picks"],
    )


def _chain_name(lines: list[str]) -> str:
    return _one(lines, r"^\s*chain ", "chain").split()[1]


def wrap(text: str, width: int = FIT) -> list[str]:
    """One rule as lines that fit a box; continuations indented."""
    return textwrap.wrap(
        text, width, subsequent_indent="    ", break_on_hyphens=False, break_long_words=True
    )


def column(svg: Svg, x: float, mode: Mode) -> float:
    svg.text(x, 92, head(mode.heading, 14))
    svg.text(x, 110, Line(mode.command, "mono", 11))
    y = 124.0
    for i, box in enumerate(mode.boxes):
        lines = [head(part, 11) for part in wrap(box.title, FIT_TITLE)]
        for rule in box.rules:
            lines += [code(part, SIZE) for part in wrap(rule)]
        bottom = svg.panel(x, y, COLUMN, lines, "#ffffff" if i else "#eef3fb", "#3c64b4")
        if i < len(mode.arrows):
            svg.arrow([(x + 30, bottom), (x + 30, bottom + 40)], ARROW)
            svg.label(x + 42, bottom + 25, mode.arrows[i])
            y = bottom + 42
        else:
            y = bottom
    return y


def render(captures: dict[str, blocks.Capture]) -> str:
    svg = Svg()
    bottom = max(
        column(svg, 20, iptables(captures)), column(svg, WIDTH - 20 - COLUMN, nft(captures))
    )
    height = bottom + 50
    run = {c.run for n, c in captures.items() if n.startswith("rules-")}
    source = f"captured in the lab by {blocks.SCRIPT}, run {', '.join(sorted(run))}"
    title = "The backend Service's rule chains in kube-proxy's iptables and nftables modes"
    desc = (
        "Left, iptables mode: the CIP-SERVICES chain matches the backend ClusterIP and port "
        "and jumps to the Service's chain, which picks an endpoint chain with statistic "
        "probabilities 1/3, 1/2 and the rest; the endpoint chain DNATs to the pod. Right, "
        "nftables mode: the service-ips map finds the Service's chain in one lookup, numgen "
        "random picks an endpoint chain, which does dnat to the pod. Each box holds the "
        f"lines the lab printed, {source}."
    )
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:g}" '
        f'viewBox="0 0 {WIDTH} {height:g}" role="img" aria-labelledby="title desc">',
        f'<title id="title">{escape(title)}</title>',
        f'<desc id="desc">{escape(desc)}</desc>',
        "<defs>",
        f"<style>.sans {{ font-family: {SANS}; }} .mono {{ font-family: {MONO}; }}</style>",
        *(
            f'<marker id="{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" '
            f'markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
            f'fill="{color}"/></marker>'
            for color, name in svg.markers.items()
        ),
        "</defs>",
        f'<rect width="{WIDTH}" height="{height:g}" fill="#ffffff"/>',
        f'<text x="{WIDTH / 2:g}" y="34" class="sans" font-size="17" font-weight="bold" '
        f'fill="{INK}" text-anchor="middle">{escape(title)}</text>',
        f'<text x="{WIDTH / 2:g}" y="56" class="sans" font-size="12" fill="{MUTED}" '
        f'text-anchor="middle">{escape(source)}; a node runs one mode</text>',
        *svg.parts,
        "</svg>",
        "",
    ]
    return "\n".join(parts)


def main() -> int:
    OUTPUT.write_text(render(blocks.load()), encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
