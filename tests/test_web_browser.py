"""The web UI in real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium):
sign in with the token, enrol a person by upload, let the Frigate simulator send a matching
event, watch it arrive in the review queue without a reload, confirm it, find the audit entry.
Screenshots go to .artifacts/browser/ (gitignored) for a human to look at.

Selenium is synchronous: browser steps run in a thread while the service runs on the loop.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from face_watchlist.demo import free_port
from face_watchlist.faces.pipeline import FacePipeline
from face_watchlist.frigate.simulator import available_message, publish_lifecycle
from service_rig import rig

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / ".artifacts" / "browser"
JOHNS = Path(__file__).parent / "data" / "faces" / "dlib_johns" / "images"
TOKEN = "browser-test-token-0123456789"
BOX = (390, 40, 890, 700)
PHONE = (390, 844)


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    binary, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not chromedriver:  # scripts/setup installs them; missing means a broken set-up
        pytest.fail("chromium and chromium-driver are not installed: run scripts/setup", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={PHONE[0]},{PHONE[1]}"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=ChromeService(chromedriver), options=options)
    browser.set_window_size(*PHONE)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield browser
    finally:
        browser.quit()


def wait(browser: WebDriver, condition: Callable[[Any], Any], timeout: float = 20) -> Any:
    try:
        return WebDriverWait(browser, timeout, poll_frequency=0.05).until(condition)
    except TimeoutException:
        browser.save_screenshot(str(SHOTS / "failure.png"))
        logs = "\n".join(str(e) for e in browser.get_log("browser"))  # type: ignore[attr-defined]
        raise AssertionError(f"timed out on {browser.current_url}; browser console:\n{logs}") from None


def visible(css: str) -> Callable[[Any], WebElement | bool]:
    return ec.visibility_of_element_located((By.CSS_SELECTOR, css))


def toast_contains(text: str) -> Callable[[Any], bool]:
    return ec.text_to_be_present_in_element((By.ID, "toast"), text)


def sign_in(driver: WebDriver, url: str) -> None:
    driver.get(url)
    token = wait(driver, visible("#login-token"))  # the API said 401: the page asks
    token.send_keys(TOKEN, Keys.ENTER)
    wait(driver, ec.invisibility_of_element_located((By.ID, "login")))


async def step(fn: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(fn)


async def test_enrol_review_and_audit_in_the_browser(
    tmp_path: Path, broker: int, pipeline: FacePipeline, model_dir: Path, driver: WebDriver
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    async with (
        rig(tmp_path, broker, pipeline, model_dir, web_port=port, web_token=TOKEN) as running,
        aiomqtt.Client("127.0.0.1", broker, identifier="frigate") as frigate,
    ):
        await asyncio.sleep(0.5)
        await frigate.publish(*available_message("online"), qos=1)

        def sign_in_and_enrol() -> None:
            sign_in(driver, base + "#/people")
            name = wait(driver, visible("#person-name"))
            name.send_keys("John Savage")
            driver.find_element(By.ID, "person-photo").send_keys(str(JOHNS / "John_Savage" / "001.jpg"))
            driver.find_element(By.XPATH, "//button[text()='Add person']").click()
            wait(driver, toast_contains("Photo enrolled"))
            driver.save_screenshot(str(SHOTS / "1-people-enrolled.png"))
            driver.get(base + "#/review")
            wait(driver, visible("main h2"))

        await step(sign_in_and_enrol)
        event = running.sim.add_event(
            "7.0-savage", "front_door", (JOHNS / "John_Savage" / "002.jpg").read_bytes(), box=BOX
        )
        published = time.monotonic()
        await publish_lifecycle(frigate, "frigate", event, updates=1)

        def review_it() -> float:
            card = wait(driver, visible('article[aria-label="possible match: John Savage"]'))
            seen = time.monotonic() - published  # pushed to the open page: no reload, no polling
            wait(
                driver, lambda d: all(i.get_attribute("src") for i in card.find_elements(By.TAG_NAME, "img"))
            )
            driver.save_screenshot(str(SHOTS / "2-review-queue.png"))
            card.find_element(By.CSS_SELECTOR, "button.confirm").click()
            wait(driver, toast_contains("Confirmed: John Savage"))
            driver.get(base + "#/audit")
            row = wait(driver, visible('tr[data-action="review.confirm"]'))
            assert "token" in row.text
            driver.save_screenshot(str(SHOTS / "3-audit.png"))
            return seen

        seen = await step(review_it)
        print(f"review card shown {seen:.2f} s after Frigate's event (includes the models)")
        records = running.service.records
        (confirmed,), _ = records.query(status="confirmed")
        assert (confirmed.event_id, confirmed.reviewer) == ("7.0-savage", "token")


async def test_every_page_renders_on_a_phone_and_is_keyboard_reachable(
    tmp_path: Path, broker: int, pipeline: FacePipeline, model_dir: Path, driver: WebDriver
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    async with rig(tmp_path, broker, pipeline, model_dir, web_port=port, web_token=TOKEN):

        def walk() -> None:
            sign_in(driver, base + "#/health")
            wait(driver, visible('dd[data-key="pack"]'))
            for page in ("live", "review", "people", "import", "audit", "health"):
                driver.get(base + f"#/{page}")
                wait(driver, visible("main h2"))
                width = driver.execute_script("return document.documentElement.scrollWidth")
                assert width <= PHONE[0], f"{page} scrolls sideways on a phone ({width} px)"
                driver.save_screenshot(str(SHOTS / f"phone-{page}.png"))
            # keyboard: Tab from the top reaches every page link, Enter follows it
            driver.get(base + "#/live")
            wait(driver, visible("main h2"))
            body = driver.find_element(By.TAG_NAME, "body")
            reached = set()
            for _ in range(12):
                body.send_keys(Keys.TAB) if not reached else driver.switch_to.active_element.send_keys(
                    Keys.TAB
                )
                href = driver.switch_to.active_element.get_attribute("href") or ""
                if "#/" in href:
                    reached.add(href.rsplit("#/", 1)[1])
            assert {"live", "review", "people", "import", "audit", "health"} <= reached
            people = driver.find_element(By.CSS_SELECTOR, 'nav a[href="#/people"]')
            people.send_keys(Keys.ENTER)
            wait(driver, visible("#person-name"))
            assert driver.find_element(By.CSS_SELECTOR, "#person-list option").text == "visitors"

        await step(walk)
