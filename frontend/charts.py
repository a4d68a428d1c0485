"""Bar charts as plain geometry, drawn as SVG by the template: no JavaScript.

Colours go in SVG presentation attributes (fill=…), not style attributes,
which the Content-Security-Policy would block.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Distinct on white and for the common colour-vision deficiencies (Okabe-Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
FAILED_COLOUR = "#B42318"

WIDTH = 520
LABEL_WIDTH = 190
BAR_SPACE = 270
ROW = 30
BAR_HEIGHT = 20
_LABEL_CHARS = 26


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    full_label: str
    count: int
    y: int
    width: int
    colour: str
    text_x: int


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    width: int
    height: int
    bar_x: int
    bar_space: int
    bars: tuple[Bar, ...]


def pod_colours(*pod_lists: Iterable[str]) -> dict[str, str]:
    """One colour per pod, the same in every chart on the page."""
    names = sorted({name for pods in pod_lists for name in pods})
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def bar_chart(
    title: str, counts: Mapping[str, int], failed: int, total: int, colours: Mapping[str, str]
) -> Chart:
    rows = list(counts.items())
    if failed:
        rows.append(("failed", failed))
    scale = BAR_SPACE / max(total, 1)
    bars = []
    for index, (name, count) in enumerate(rows):
        width = max(round(count * scale), 2 if count else 0)
        label = name if len(name) <= _LABEL_CHARS else "…" + name[-(_LABEL_CHARS - 1) :]
        bars.append(
            Bar(
                label=label,
                full_label=name,
                count=count,
                y=index * ROW,
                width=width,
                colour=FAILED_COLOUR if name == "failed" and failed else colours.get(name, "#666"),
                text_x=LABEL_WIDTH + width + 6,
            )
        )
    return Chart(
        title=title,
        width=WIDTH,
        height=max(len(bars), 1) * ROW,
        bar_x=LABEL_WIDTH,
        bar_space=BAR_SPACE,
        bars=tuple(bars),
    )
