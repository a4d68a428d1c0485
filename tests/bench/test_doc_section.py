"""The section a bench owns in docs/benchmarks.md: written in place, kept by the other bench."""

from __future__ import annotations

from pathlib import Path

from bench import doc_section
from bench.report import Row, write_report
from bench.rule_report import SECTION

PAGE = "# Benchmarks\n\nthe main table\n\n## Machine\n\n- cores: 2\n"


def test_a_new_section_goes_before_the_machine_heading() -> None:
    text = doc_section.put(PAGE, "rules", "## Rules\n\nfirst")
    assert text == (
        "# Benchmarks\n\nthe main table\n\n"
        "<!-- rules: start -->\n## Rules\n\nfirst\n<!-- rules: end -->\n\n"
        "## Machine\n\n- cores: 2\n"
    )


def test_a_section_is_replaced_where_it_is() -> None:
    once = doc_section.put(PAGE, "rules", "## Rules\n\nfirst")
    twice = doc_section.put(once, "rules", "## Rules\n\nsecond")
    assert twice == once.replace("first", "second")
    assert twice.count("<!-- rules: start -->") == 1


def test_a_page_without_the_heading_gets_the_section_at_the_end() -> None:
    assert (
        doc_section.put("# B\n", "rules", "x")
        == "# B\n\n<!-- rules: start -->\nx\n<!-- rules: end -->\n"
    )


def test_the_main_report_keeps_the_rule_scaling_section(tmp_path: Path) -> None:
    output = tmp_path / "benchmarks.md"
    output.write_text(doc_section.put(PAGE, SECTION, "## Rule scaling\n\n| iptables | 10 |"))
    write_report(
        output,
        rows=[
            Row(
                name="bare",
                process="bare",
                rps=1.0,
                ratio=1.0,
                same_ratio=None,
                cpu_us=1.0,
                p50=1.0,
                p99=1.0,
                errors=0,
                peak_rss=1.0,
            )
        ],
        idle_rss={},
        startup={},
        machine={k: k for k in ("date", "cores", "cpu", "kernel", "python", "wrk", "packages")},
        command="make bench",
        rounds=1,
        duration=1,
        connections=1,
        shared_vs_per_request=None,
    )
    text = output.read_text()
    assert "| iptables | 10 |" in text
    assert text.index("<!-- rule-scaling: start -->") < text.index("## Machine")
