"""The frontend in a real browser: Debian's chromium driven by Playwright, against the running stack
(``python -m frontend`` in front of ``python -m services.predictor`` when it exists). Screenshots go
to tests/artifacts/."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from events.store import EventStore
from tests.frontend.chains import FilledStore, deployed_chain, fill_store
from tests.frontend.stack import Stack, running_stack

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if shutil.which(CHROMIUM) is None:
    pytest.skip(f"{CHROMIUM} is missing; apt-get install chromium", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, FilledStore]]:
    home = tmp_path_factory.mktemp("kfchain-home")
    filled = fill_store(home / "events.db")
    with running_stack(home, version="v2") as running:
        yield running, filled


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield page
    context.close()
    assert errors == [], f"the browser console reported errors (CSP violations show up here): {errors}"


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"frontend-{name}.png"), full_page=True)


def test_predict_a_versicolor_flower(page: Page, stack) -> None:
    running, _ = stack
    page.goto(f"{running.frontend_url}/predict")
    page.get_by_role("link", name="versicolor").click()  # fills the form in place (JavaScript)
    expect(page.get_by_label("Petal length")).to_have_value("4.5")
    page.get_by_role("button", name="Predict").click()
    expect(page.locator(".species")).to_have_text("versicolor")
    expect(page.locator(".model-version")).to_have_text("v2")
    expect(page.locator("table.probabilities tr.winner th")).to_have_text("versicolor")
    _shot(page, "predict")


def test_predict_works_without_javascript_and_shows_field_errors(browser: Browser, stack) -> None:
    running, _ = stack
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.goto(f"{running.frontend_url}/predict?example=virginica")
    page.get_by_label("Petal width").fill("9")
    page.get_by_role("button", name="Predict").click()
    expect(page.locator("#petal_width-error")).to_contain_text("between 0.05 and 5 cm")
    _shot(page, "predict-invalid")
    page.get_by_label("Petal width").fill("2.4")
    page.get_by_role("button", name="Predict").click()
    expect(page.locator(".species")).to_have_text("virginica")
    context.close()


def test_model_status_page(page: Page, stack) -> None:
    running, filled = stack
    page.goto(running.frontend_url)
    serving = page.locator("#serving")
    expect(serving).to_contain_text("v2")
    expect(serving).to_contain_text("96.7%")
    expect(page.locator("#predictor .badge")).to_have_text("ready")
    if running.predictor_kind == "real":  # kfchain's predictor reports the version it serves
        expect(page.locator("#predictor")).to_contain_text("Answering version")
    serving.get_by_role("link", name=filled.deployed_chain[:8]).click()
    expect(page).to_have_url(f"{running.frontend_url}/events/{filled.deployed_chain}")
    _shot(page, "chain")
    page.goto(running.frontend_url)
    _shot(page, "index")


def test_events_timeline_shows_chains_and_updates_live(page: Page, stack) -> None:
    running, filled = stack
    page.goto(f"{running.frontend_url}/events")
    deployed = page.locator(f"#chain-{filled.deployed_chain}")
    expect(deployed.locator(".badge").first).to_have_text("deployed")
    expect(deployed.locator(".step")).to_have_count(4)
    failed = page.locator(f"#chain-{filled.failed_chain}")
    expect(failed.locator(".step.dead")).to_have_count(1)
    expect(failed).to_contain_text("<script>alert('xss')</script>")  # shown as text, never run
    expect(page.locator("#live-status")).to_have_text("live")
    _shot(page, "events")

    new_chain = deployed_chain(datetime.now(UTC), version="v4")
    store = EventStore(filled.path)
    try:
        store.append(new_chain[0])
        live = page.locator(f"#chain-{new_chain[0].chainid}")
        expect(live).to_contain_text("training run trained 3 candidates for v4", timeout=5000)
        for event in new_chain[1:]:
            store.append(event)
        expect(live.locator(".step")).to_have_count(4, timeout=5000)
        expect(live.locator(".badge").first).to_have_text("deployed")
    finally:
        store.close()
    assert page.locator("#chains > article").first.get_attribute("id") == f"chain-{new_chain[0].chainid}"
    _shot(page, "events-live")
