"""The frontend's pure parts: settings, Server-Timing, `n`, the resolver, the charts."""

from __future__ import annotations

import json

import pytest
from markupsafe import Markup
from pydantic import ValidationError

from frontend.backend_client import parse_server_timing
from frontend.charts import PALETTE, bar_chart, pod_colours
from frontend.config import FrontendSettings
from frontend.listing_cache import ListingCache
from frontend.runs_on import HostFacts, decide, parse_resolv_conf
from frontend.spread import SpreadInputError, parse_n
from frontend.templating import create_templates

_ENV = (
    "BACKEND_URL",
    "BACKEND_KEEPALIVE_EXPIRY_SECONDS",
    "SPREAD_DEFAULT",
    "SPREAD_MAX",
    "PORT",
    "HOST",
    "RUNS_ON",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_local_defaults(clean_env: pytest.MonkeyPatch) -> None:
    settings = FrontendSettings()
    assert settings.backend_url == "http://127.0.0.1:8000"
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    # Below the backend server's 30 s keep-alive timeout.
    assert settings.backend_keepalive_expiry_seconds == 20
    assert settings.backend_keepalive_expiry_seconds < settings.keepalive_timeout_seconds
    assert (settings.spread_default, settings.spread_max) == (30, 200)


def test_the_kubernetes_value_names_a_service(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("BACKEND_URL", "http://backend:8000/")
    settings = FrontendSettings()
    assert settings.backend_url == "http://backend:8000"
    assert (settings.backend_host, settings.backend_port) == ("backend", 8000)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BACKEND_URL", "backend:8000"),
        ("BACKEND_URL", "ftp://backend"),
        ("SPREAD_DEFAULT", "500"),
        ("BACKEND_KEEPALIVE_EXPIRY_SECONDS", "-1"),
    ],
)
def test_bad_settings_stop_the_start(clean_env: pytest.MonkeyPatch, name: str, value: str) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ValidationError):
        FrontendSettings()


def test_server_timing_is_parsed_leniently() -> None:
    header = "db;dur=1.25, cache;desc=redis;dur=0.3, app;dur=2.0, junk, bad;dur=x"
    assert parse_server_timing(header) == {"db": 1.25, "cache": 0.3, "app": 2.0}
    assert parse_server_timing("") == {}


@pytest.mark.parametrize(("raw", "expected"), [(None, 30), ("", 30), (" 7 ", 7), ("200", 200)])
def test_n_accepts(raw: str | None, expected: int) -> None:
    assert parse_n(raw, 30, 200) == expected


@pytest.mark.parametrize("raw", ["0", "201", "-1", "1.5", "ten", "1e2", "9" * 30])
def test_n_refuses(raw: str) -> None:
    with pytest.raises(SpreadInputError, match="from 1 to 200"):
        parse_n(raw, 30, 200)


def test_charts_scale_and_keep_a_colour_per_pod() -> None:
    colours = pod_colours(["b", "a"], ["c"])
    assert colours == {"a": PALETTE[0], "b": PALETTE[1], "c": PALETTE[2]}
    chart = bar_chart("t", {"a": 20, "b": 10}, failed=0, total=30, colours=colours)
    assert [bar.width for bar in chart.bars] == [180, 90]
    assert chart.height == 60
    failing = bar_chart("t", {}, failed=3, total=3, colours=colours)
    assert [(bar.label, bar.count) for bar in failing.bars] == [("failed", 3)]


def test_templates_escape_everything() -> None:
    env = create_templates().env
    assert env.autoescape is True
    rendered = env.from_string("{{ x }} {{ x|ticks }}").render(x="<i>`a<b`</i>")
    assert "<i>" not in rendered
    assert "<code>a&lt;b</code>" in rendered


def test_listing_cache_parses_and_renders_each_body_once() -> None:
    cache = ListingCache(capacity=2)
    one, two, three = (json.dumps({"items": [{"id": i}]}).encode() for i in (1, 2, 3))
    assert cache.payload(one) == {"items": [{"id": 1}]}
    assert cache.payload(one) is cache.payload(bytes(one))  # equal bytes, parsed once
    renders: list[int | None] = []

    def render(tag: str, written: int | None = None) -> Markup:
        renders.append(written)
        return Markup(f"<ol>{tag}</ol>")

    assert cache.html(one, None, lambda: render("a")) == "<ol>a</ol>"
    assert cache.html(one, None, lambda: render("b")) == "<ol>a</ol>"  # kept
    assert cache.html(one, 7, lambda: render("c", 7)) == "<ol>c</ol>"  # `written` differs
    assert renders == [None, 7]
    # A body never parsed here (so never checked) is rendered, not kept.
    assert cache.html(two, None, lambda: render("d")) == "<ol>d</ol>"
    assert cache.html(two, None, lambda: render("e")) == "<ol>e</ol>"
    assert cache.html(None, None, lambda: render("f")) == "<ol>f</ol>"
    cache.payload(two)
    cache.payload(three)  # over capacity: the least recently used (one) goes
    assert cache.html(one, None, lambda: render("g")) == "<ol>g</ol>"
    with pytest.raises(ValueError):
        cache.payload(b"{not json")


def test_display_filters_are_worked_out_once_and_stay_escaped() -> None:
    env = create_templates().env
    assert env.filters["when"]("2026-11-25T09:30:00.123Z") == "2026-11-25 09:30:00 UTC"
    assert env.filters["when"]("not a time") == "not a time"
    assert env.filters["when"](None) == ""
    first = env.filters["ticks"]("use `<b>`")
    assert first == "use <code>&lt;b&gt;</code>" and env.filters["ticks"]("use `<b>`") is first
    assert env.filters["ticks"](None) == "None"


KUBELET_RESOLV = (
    "search clusterip-demo.svc.cluster.local svc.cluster.local cluster.local\n"
    "nameserver 10.96.0.10\noptions ndots:5\n"
)
COMPOSE_RESOLV = "# Generated by Docker Engine.\nnameserver 127.0.0.11\noptions ndots:0\n"
LAPTOP_RESOLV = "nameserver 192.168.1.1\nsearch home.arpa\n"


def _facts(resolv: str, kubernetes_host: str | None = None) -> HostFacts:
    nameservers, search = parse_resolv_conf(resolv)
    return HostFacts(kubernetes_host, nameservers, search)


def test_resolv_conf_lines() -> None:
    assert parse_resolv_conf(KUBELET_RESOLV) == (
        ("10.96.0.10",),
        ("clusterip-demo.svc.cluster.local", "svc.cluster.local", "cluster.local"),
    )
    assert parse_resolv_conf(COMPOSE_RESOLV) == (("127.0.0.11",), ())


@pytest.mark.parametrize(
    ("addresses", "facts", "place"),
    [
        # make run: a loopback address, whatever else the host shows.
        (["127.0.0.1"], _facts(LAPTOP_RESOLV), "local"),
        (["::1", "127.0.0.1"], _facts(COMPOSE_RESOLV), "local"),
        (["127.0.0.1"], _facts(KUBELET_RESOLV, "10.96.0.1"), "local"),
        # A cluster: the kubelet's variable, or its search path (the lab sets no variable).
        (["10.96.40.39"], _facts(LAPTOP_RESOLV, "10.96.0.1"), "kubernetes"),
        (["10.96.40.39"], _facts(KUBELET_RESOLV), "kubernetes"),
        # compose: Docker's embedded DNS, several container addresses, no virtual IP.
        (["172.18.0.4", "172.18.0.5", "172.18.0.6"], _facts(COMPOSE_RESOLV), "compose"),
        # Nothing to go by: the panel does not guess.
        (["192.168.1.20"], _facts(LAPTOP_RESOLV), "unknown"),
        ([], _facts(""), "unknown"),
    ],
)
def test_where_the_frontend_runs(addresses: list[str], facts: HostFacts, place: str) -> None:
    decided = decide("auto", addresses, facts)
    assert decided.place == place
    assert decided.because


def test_runs_on_setting_overrides_the_facts(clean_env: pytest.MonkeyPatch) -> None:
    assert decide("compose", ["127.0.0.1"], _facts(LAPTOP_RESOLV)).place == "compose"
    clean_env.setenv("RUNS_ON", "kubernetes")
    assert FrontendSettings().runs_on == "kubernetes"
    clean_env.setenv("RUNS_ON", "cloud")
    with pytest.raises(ValidationError):
        FrontendSettings()
