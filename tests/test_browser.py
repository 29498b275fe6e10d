"""The real app in headless Debian Chromium (Playwright): every tab opens, the DeepDream example
runs to the end, no error toast and no console error; screenshots go to artifacts/."""
from __future__ import annotations

import os
import shutil

import pytest

from tests.conftest import ARTIFACTS

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: `make test` installs Debian's chromium")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


def open_page(browser, url, **viewport):
    page = browser.new_page(viewport=viewport or {"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(url)
    page.get_by_text("Generative Deep Learning Studio").first.wait_for(timeout=60_000)
    return page, problems


def set_number(scope, label: str, value: str) -> None:
    """Type into a slider's number box (as a person would) and confirm with Enter."""
    box = scope.get_by_label(f"number input for {label}", exact=True)
    box.fill(value)
    box.press("Enter")


def error_toasts(page) -> list[str]:
    return [t for t in page.locator(".toast-body.error, .toast-wrap .error").all_inner_texts() if t]


def test_every_tab_and_the_deepdream_example(browser, app_url):
    ARTIFACTS.mkdir(exist_ok=True)
    page, problems = open_page(browser, app_url)
    tabs = page.get_by_role("tab")
    names = [t.strip() for t in tabs.all_inner_texts()]
    assert "DeepDream" in names
    for i, name in enumerate(names):
        tabs.nth(i).click()
        page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / f"tab-{name.lower().replace(' ', '-')}.png"),
                        full_page=True)
        assert not error_toasts(page), name

    # latent grid: the grid appears on first visit; a click on a cell shows it with its z
    page.get_by_role("tab", name="Latent grid").click()
    grid = page.locator("#latent-grid img")
    grid.wait_for(timeout=60_000)
    box = grid.bounding_box()
    grid.click(position={"x": box["width"] * 0.1, "y": box["height"] * 0.9})
    page.get_by_text("cell row").first.wait_for(timeout=30_000)
    assert "column" in page.get_by_text("cell row").first.inner_text()
    page.get_by_role("button", name="Zoom in", exact=True).filter(has_text="Zoom in").click()
    page.get_by_text("window z[0] -0.82..+0.82").first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "latent-grid.png"), full_page=True)
    assert not error_toasts(page)

    # style transfer: an example at a small size, run to the end
    page.get_by_role("tab", name="Style transfer").click()
    panel = page.locator("#style-panel")
    panel.locator("tr.tr-body").first.click()
    page.wait_for_timeout(1000)
    set_number(panel, "Output size (px)", "192")
    set_number(panel, "Iterations", "20")
    page.get_by_role("button", name="Stylise").click()
    status = page.locator("#style-status")
    status.get_by_text("Done").wait_for(timeout=240_000)
    assert "192" in status.inner_text()
    page.screenshot(path=str(ARTIFACTS / "style-result.png"), full_page=True)
    assert not error_toasts(page)

    page.get_by_role("tab", name="DeepDream").click()
    page.locator("#deepdream-panel .gallery-item").first.click()
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Dream").first.click()
    status = page.locator("#deepdream-status")
    status.get_by_text("Done").wait_for(timeout=240_000)
    assert "octave 3/3" in status.inner_text()
    page.screenshot(path=str(ARTIFACTS / "deepdream-result.png"), full_page=True)
    assert page.locator("img").count() >= 2  # the input example and the dream
    assert not error_toasts(page)
    assert problems == []


def test_phone_layout_has_no_errors(browser, app_url):
    page, problems = open_page(browser, app_url, width=390, height=844)
    page.locator("#latent-grid img").wait_for(timeout=60_000)  # the first tab draws its grid
    page.screenshot(path=str(ARTIFACTS / "phone-first-tab.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"the page scrolls sideways on a phone ({width}px)"
    assert problems == [] and not error_toasts(page)
