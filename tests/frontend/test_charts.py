"""frontend/charts.py: bars scaled to the largest, one colour per pod."""

from __future__ import annotations

from frontend.charts import PALETTE, bar_chart, pod_colours


def test_charts_scale_and_keep_a_colour_per_pod() -> None:
    colours = pod_colours(["b", "a"], ["c"])
    assert colours == {"a": PALETTE[0], "b": PALETTE[1], "c": PALETTE[2]}
    chart = bar_chart("t", {"a": 20, "b": 10}, failed=0, total=30, colours=colours)
    assert [bar.width for bar in chart.bars] == [180, 90]
    assert chart.height == 60
    failing = bar_chart("t", {}, failed=3, total=3, colours=colours)
    assert [(bar.label, bar.count) for bar in failing.bars] == [("failed", 3)]
