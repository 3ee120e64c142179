"""The demo page in a real browser (Debian's chromium, headless) against real api processes.

Sign up, click ten times quickly, and watch the live balance reach 10 (``make run``'s stack;
the screenshot is kept in ``.local/artifacts/demo-page.png``). The "Download Mobile App"
button follows the release the api announces, revalidated when the window regains focus.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from devstack.servers import MongoServer, RedisServer, free_port
from tests.support.local_run import local_run
from tests.support.sse import ApiProcess

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


RELEASE = {
    "MOBILE_APK_DOWNLOAD_URL": "https://cdn.example.com/crypto-mine/app-release.apk",
    "MOBILE_APK_VERSION": "1.4.2",
    "MOBILE_APK_BUILD_DATE": "2026-11-01",
    "MOBILE_APK_RELEASE_NOTES": "Faster mining.",
}


@pytest.fixture
def api_on(
    tmp_path: Path, redis_server: RedisServer, mongo_server: MongoServer, mongo_db: str
) -> Iterator[Callable[..., ApiProcess]]:
    """Starts the api (a real uvicorn process) on one port, anew with other settings each time:
    a deploy of another release under the page's feet."""
    port = free_port()
    running: list[ApiProcess] = []

    def start(**env: str) -> ApiProcess:
        for old in running:
            old.stop()
        folder = tmp_path / f"api-{len(running)}"
        api = ApiProcess(folder, redis_server.url, mongo_server.uri, mongo_db, port, **env)
        running.append(api.start())
        return api

    yield start
    for api in running:
        api.stop()


def regain_focus(browser: webdriver.Chrome) -> None:
    """Leave the page for another tab and come back, as a person switching tabs does."""
    page = browser.current_window_handle
    browser.switch_to.new_window("tab")
    browser.close()
    browser.switch_to.window(page)


def test_the_mobile_app_button_follows_the_release_and_is_revalidated_on_focus(
    api_on: Callable[..., ApiProcess], browser: webdriver.Chrome
) -> None:
    wait = WebDriverWait(browser, 20, poll_frequency=0.1)
    api = api_on(**RELEASE)
    browser.get(f"{api.url}/")
    button = browser.find_element(By.ID, "mobile-app")
    wait.until(lambda _: button.is_displayed())
    assert button.text == "Download Mobile App"
    dialog = browser.find_element(By.ID, "mobile-dialog")
    assert not dialog.is_displayed()
    button.click()
    wait.until(lambda _: dialog.is_displayed())
    assert text_of(browser, "mobile-version") == "1.4.2"
    assert text_of(browser, "mobile-built") == ", built 2026-11-01"
    assert text_of(browser, "mobile-notes") == "Faster mining."
    link = browser.find_element(By.ID, "mobile-download")
    assert link.get_attribute("href") == RELEASE["MOBILE_APK_DOWNLOAD_URL"]

    # A new release is deployed while the dialog is open: it shows once the window has focus.
    api_on(**{**RELEASE, "MOBILE_APK_VERSION": "1.5.0", "MOBILE_APK_RELEASE_NOTES": "Rooms."})
    assert text_of(browser, "mobile-version") == "1.4.2"  # nothing polls in between
    regain_focus(browser)
    wait.until(lambda b: text_of(b, "mobile-version") == "1.5.0")
    assert text_of(browser, "mobile-notes") == "Rooms."
    assert dialog.is_displayed()
    browser.find_element(By.ID, "mobile-close").click()
    wait.until(lambda _: not dialog.is_displayed())

    # The release is withdrawn: the button goes at the next focus, and a new page has none.
    api_on()
    regain_focus(browser)
    wait.until(lambda _: not button.is_displayed())
    browser.get(f"{api.url}/")
    wait.until(lambda b: b.find_element(By.ID, "account").is_displayed())
    assert not browser.find_element(By.ID, "mobile-app").is_displayed()

    messages = [entry["message"] for entry in browser.get_log("browser")]
    assert not [m for m in messages if "Content Security Policy" in m], messages


def test_a_release_url_that_is_not_http_shows_no_button(
    api_on: Callable[..., ApiProcess], browser: webdriver.Chrome
) -> None:
    api = api_on(**{**RELEASE, "MOBILE_APK_DOWNLOAD_URL": "javascript:alert(1)"})
    browser.get(f"{api.url}/")
    WebDriverWait(browser, 20).until(lambda b: b.find_element(By.ID, "account").is_displayed())
    assert browser.execute_script("return document.getElementById('mobile-app').hidden") is True
