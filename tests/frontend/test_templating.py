"""frontend/templating.py: everything escaped; display filters worked out once."""

from __future__ import annotations

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.templating import Jinja2Templates

from common.identity import PodIdentity
from frontend.templating import Fragment, create_templates, render


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


def test_a_fragment_is_rendered_into_its_page_once_and_kept() -> None:
    env = jinja2.Environment(
        loader=jinja2.DictLoader(
            {"page.html": "<main>{{ part }}</main>", "part.html": "<p>{{ x }}</p>"}
        ),
        autoescape=True,
    )
    templates = Jinja2Templates(env=env)
    request = Request({"type": "http", "path": "/", "query_string": b"", "headers": []})
    identity = PodIdentity("frontend", "test", "frontend-a", "10.0.0.5", "node-1")
    kept: dict[object, Markup] = {}
    part = Fragment("part", "part.html", {"x": "<b>"}, kept, 7)
    first = render(templates, request, identity, "page.html", {}, fragments=(part,))
    assert first.body == b"<main><p>&lt;b&gt;</p></main>"  # escaped once, not twice
    assert kept == {7: "<p>&lt;b&gt;</p>"}
    kept[7] = Markup("<p>kept</p>")
    again = render(templates, request, identity, "page.html", {}, fragments=(part,))
    assert again.body == b"<main><p>kept</p></main>"  # used as kept, not rendered again
