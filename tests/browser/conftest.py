"""The browser tier: the Temporal UI as operators see it, in Debian's Chromium driven by Playwright (never a browser
that `playwright install` would download). One browser per test session; a fresh page per test, whose screenshot
is kept as an artifact: `$VMSNAP_TEST_ARTIFACTS/browser/`, or `browser-artifacts/` under the session's pytest
temporary directory (/tmp/pytest-of-$USER/pytest-N/, popen-gwN/ under it with two sessions); a failing test's report
names its files."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.browser.ui import TemporalUI

CHROMIUM = os.environ.get("VMSNAP_CHROMIUM", "/usr/bin/chromium")
# root in CI, a closed network: no sandbox (it needs user namespaces a root container may lack), nothing that calls
# home (component updates, sync, background fetches), no QUIC, no GPU
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1440, "height": 1000}


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("VMSNAP_TEST_ARTIFACTS")
    directory = Path(configured) / "browser" if configured else tmp_path_factory.getbasetemp() / "browser-artifacts"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (.ci/run does), or set "
                           "VMSNAP_CHROMIUM to another Chromium build")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport=VIEWPORT)
    opened = await context.new_page()
    yield opened
    await context.close()


@pytest.fixture
def shoot(page: Page, artifacts_dir: Path, request: pytest.FixtureRequest):
    """`await shoot("what")` saves the page as <module>-<test>-<what>.png in the artifacts directory (both UIs' files
    have the same test names)."""
    async def save(what: str) -> Path:
        module = Path(str(request.node.fspath)).stem
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{module}-{request.node.name}-{what}")[:180] + ".png"
        path = artifacts_dir / name
        await page.screenshot(path=str(path), full_page=True)
        request.node.add_report_section("call", "screenshot", str(path))
        return path
    return save


@pytest.fixture
def ui(page: Page, temporal_ui_url: str) -> TemporalUI:
    return TemporalUI(page, temporal_ui_url)


@pytest.fixture
def product_env(product_env: dict[str, str], temporal_ui_url: str) -> dict[str, str]:
    """The product links its objects to this UI (`vmsnap.io/workflow-url`)."""
    return {**product_env, "TEMPORAL_UI_URL": temporal_ui_url}
