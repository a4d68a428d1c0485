"""frontend/templating.py: everything escaped; display filters worked out once."""

from __future__ import annotations

from frontend.templating import create_templates


def test_templates_escape_everything() -> None:
    env = create_templates().env
    assert env.autoescape is True
    rendered = env.from_string("{{ x }} {{ x|ticks }}").render(x="<i>`a<b`</i>")
    assert "<i>" not in rendered
    assert "<code>a&lt;b</code>" in rendered


def test_display_filters_are_worked_out_once_and_stay_escaped() -> None:
    env = create_templates().env
    assert env.filters["when"]("2026-11-25T09:30:00.123Z") == "2026-11-25 09:30:00 UTC"
    assert env.filters["when"]("not a time") == "not a time"
    assert env.filters["when"](None) == ""
    first = env.filters["ticks"]("use `<b>`")
    assert first == "use <code>&lt;b&gt;</code>" and env.filters["ticks"]("use `<b>`") is first
    assert env.filters["ticks"](None) == "None"
