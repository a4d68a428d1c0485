"""In a real browser: Debian's chromium, driven headless by Playwright.

Never `playwright install`: the browser is the system's /usr/bin/chromium.
Screenshots of the page and of /spread are kept under var/screenshots/.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import missing
from tests.frontend.conftest import SCREENSHOTS, Stack

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not os.access(CHROMIUM, os.X_OK):
        missing(f"{CHROMIUM} is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright package is not installed")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(15_000)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs  # type: ignore[attr-defined]
    yield page
    context.close()


def _sign(page, author: str, text: str) -> None:
    page.fill("#author", author)
    page.fill("#text", text)
    with page.expect_navigation():
        page.click("button[type=submit]")


def test_sign_the_guestbook_and_see_the_route(trio: Stack, page) -> None:
    page.goto(trio.frontend.url + "/")
    assert page.locator("#route-title").inner_text() == "How this page reached its data"
    text = f"Hello from Chromium {uuid.uuid4().hex[:6]}"
    _sign(page, "Playwright", text)

    assert "/?written=" in page.url
    mine = page.locator(".message-new")
    assert mine.count() == 1
    assert text in mine.inner_text()
    assert "just now, yours" in mine.inner_text()
    for key in ("frontend", "name", "address", "pod", "data"):
        assert page.locator(f"#hop-{key}").get_attribute("data-state") == "ok"
    pod = page.locator("#hop-pod .hop-value").inner_text()
    assert pod in {"backend-a", "backend-b", "backend-c"}
    assert "frontend-trio" in page.locator("#hop-frontend").inner_text()

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "page.png"), full_page=True)


def test_a_stored_script_never_runs(trio: Stack, page) -> None:
    hostile = f"<script>alert('xss')</script><img src=x onerror=alert(2)> {uuid.uuid4().hex[:6]}"
    page.goto(trio.frontend.url + "/")
    _sign(page, "<b>Mallory</b>", hostile)
    page.reload()
    mine = page.locator(".message").filter(has_text=hostile[-6:]).first
    assert mine.locator(".message-text").inner_text() == hostile
    assert mine.locator(".author").inner_text() == "<b>Mallory</b>"
    assert page.locator(".message-list script").count() == 0
    assert page.locator(".message-list img").count() == 0
    assert page.dialogs == []


def test_the_form_works_with_javascript_off(trio: Stack, browser) -> None:
    context = browser.new_context(java_script_enabled=False, viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.goto(trio.frontend.url + "/")
        text = f"No JavaScript needed {uuid.uuid4().hex[:6]}"
        page.fill("#author", "Lynx")
        page.fill("#text", text)
        with page.expect_navigation():
            page.click("button[type=submit]")
        assert text in page.locator(".message-new").inner_text()

        page.goto(trio.frontend.url + "/spread?n=12")
        page.fill("#n", "9")
        with page.expect_navigation():
            page.click("button[type=submit]")
        assert page.url.endswith("/spread?n=9")
        assert page.locator("svg.chart").count() == 2
        # The browser's own min/max check stops a typed 0; the server's
        # answer is what a hand-edited URL gets.
        refused = page.goto(trio.frontend.url + "/spread?n=0")
        assert refused is not None and refused.status == 422
        assert "n must be a whole number" in page.locator("#n-error").inner_text()
    finally:
        context.close()


def test_spread_view_in_the_browser(trio: Stack, page) -> None:
    page.goto(trio.frontend.url + "/spread?n=30")
    charts = page.locator("svg.chart")
    assert charts.count() == 2
    fresh_pods = charts.nth(0).locator("text").all_text_contents()
    kept_pods = charts.nth(1).locator("text").all_text_contents()
    pods = {"backend-a", "backend-b", "backend-c"}
    assert len(pods & set(fresh_pods)) >= 2
    assert len(pods & set(kept_pods)) == 1
    assert "A ClusterIP spreads connections, not requests." in page.inner_text(".takeaway")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "spread.png"), full_page=True)


# --- accessibility: axe-core from the npm registry (tools/axe, `npm ci` in .ci/run) ----

AXE = Path(__file__).resolve().parents[2] / "tools" / "axe" / "node_modules" / "axe-core"


def _axe_violations(page) -> list[dict[str, object]]:
    if not (AXE / "axe.min.js").is_file():
        missing("axe-core is not installed: npm ci --prefix tools/axe (needs Node.js)")
    page.add_script_tag(path=str(AXE / "axe.min.js"))
    # Every rule axe ships, not only the WCAG-tagged ones: best practices such as
    # page-has-heading-one and region count as violations too.
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        {
            "id": v["id"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result["violations"]
    ]


@pytest.fixture
def axe_page(browser) -> Iterator[object]:
    # The page's CSP (rightly) refuses scripts it did not name; only this
    # test's context lets axe in.
    context = browser.new_context(viewport=VIEWPORT, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.mark.parametrize("path", ["/", "/spread?n=12"])
def test_axe_finds_no_violation(trio: Stack, axe_page, path: str) -> None:
    page = axe_page
    page.goto(trio.frontend.url + path)
    assert page.locator("h1").count() == 1
    assert _axe_violations(page) == []


def test_axe_sees_a_violation_when_there_is_one(trio: Stack, axe_page) -> None:
    page = axe_page
    # The run above would pass with an axe that checks nothing: the same run on
    # the page with its form's label taken away must report it.
    page.goto(trio.frontend.url + "/")
    page.evaluate("document.querySelector('label[for=author]').remove()")
    ids = {v["id"] for v in _axe_violations(page)}
    assert "label" in ids
