"""The demo page in a real browser (Debian's chromium, headless) against ``make run``'s stack.

Sign up, click ten times quickly, and watch the live balance reach 10. The screenshot is kept
in ``.local/artifacts/demo-page.png``.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.local_run import local_run

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / ".local" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Headless, offline: no sandbox (root in a container), no GPU, nothing fetched from outside.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=720,900",
]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def chromium() -> None:
    """Debian's chromium and its driver, installed when missing (never a downloaded browser)."""
    subprocess.run(
        [str(ROOT / "scripts" / "ensure-apt.sh"), "chromium", "chromium-driver"],
        check=True,
        timeout=900,
    )


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[str]:
    """``python -m devstack`` on free ports; yields the api's address."""
    with local_run(tmp_path) as run:
        yield run.url


@pytest.fixture
def browser(chromium: None, tmp_path: Path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in CHROMIUM_ARGS:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(
        executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log")
    )
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def text_of(browser: WebDriver, element_id: str) -> str:
    return str(browser.find_element(By.ID, element_id).text)


def test_sign_up_mine_ten_times_and_watch_the_balance(
    stack: str, browser: webdriver.Chrome
) -> None:
    wait = WebDriverWait(browser, 30, poll_frequency=0.1)
    browser.get(f"{stack}/")
    wait.until(lambda b: b.find_element(By.ID, "account").is_displayed())
    browser.find_element(By.ID, "username").send_keys(f"miner_{secrets.token_hex(4)}")
    browser.find_element(By.ID, "password").send_keys("correct horse battery")
    browser.find_element(By.ID, "register").click()
    wait.until(lambda b: b.find_element(By.ID, "mine").is_displayed())
    wait.until(lambda b: text_of(b, "live") == "on")
    assert text_of(browser, "balance") == "0"

    button = browser.find_element(By.ID, "mine-button")
    started = time.monotonic()
    for _ in range(10):
        button.click()
    assert time.monotonic() - started < 5, "ten quick clicks"
    wait.until(lambda b: text_of(b, "balance") == "10")
    wait.until(lambda b: text_of(b, "pending") == "0")
    assert text_of(browser, "clicks") == "10"
    assert text_of(browser, "notice") == ""
    outcomes = browser.find_elements(By.CSS_SELECTOR, "#log li")
    assert outcomes, "the click outcomes arrived on the event stream"
    assert "balance 10" in outcomes[0].text

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "demo-page.png"
    assert browser.save_screenshot(str(screenshot))
    print(f"screenshot: {screenshot}")

    messages = [entry["message"] for entry in browser.get_log("browser")]
    assert not [m for m in messages if "Content Security Policy" in m], messages
    assert not [m for m in messages if "favicon" not in m and "SEVERE" in str(m)], messages
