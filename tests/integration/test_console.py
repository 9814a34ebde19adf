"""The operator console (/ops/) of a real worker after a burst: over HTTP, then in a real browser that signs in
through the form.

The burst: six cafes' deadlines (two sent, one of them named like an XSS attack, two skipped, one kicked
the bot: failed and dead-lettered, one meeting 502s: retrying), a malformed event (dead-lettered, not
replayable) and a recommendation batch of two users against the sandbox Gemini.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from agents.recommendations.cache import cache_key
from sandbox.gemini import run_in_thread
from sandbox.telegram import Reply
from streams.producers import EventPublisher
from streams.settings import Settings
from tests.conftest import FreshDatabase
from tests.integration.conftest import start_worker, worker_env
from tests.integration.factory import Factory
from tests.integration.harness import AUTH, OPS_TOKEN, eventually, unique_name
from tests.integration.recommendations import KEYS, REDIS_URL, ZONE, active_user, batches, today

pytestmark = pytest.mark.integration

HOSTILE = "<img src=x onerror=alert(1)>"
PRICES = (0.10, 0.40)  # per million input, output tokens
CHROMEDRIVER, CHROMIUM = Path("/usr/bin/chromedriver"), Path("/usr/bin/chromium")


@dataclass(frozen=True)
class Burst:
    cafes: dict[str, int]  # role -> cafe id
    batch: dict


@pytest.fixture(scope="module")
def console_database(services):
    db = FreshDatabase(unique_name("lunch_console").replace("-", "_")).create()
    yield db
    db.drop()


@pytest.fixture(scope="module")
def gemini():
    fake = run_in_thread(latency=0.01)
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def worker(console_database, telegram, gemini, tmp_path_factory):
    env = worker_env(
        console_database.url,
        TELEGRAM_API_BASE_URL=telegram.base_url,
        GEMINI_API_KEYS=",".join(KEYS),
        GEMINI_API_BASE_URL=gemini.base_url,
        REDIS_URL=REDIS_URL,
        TIMEZONE=ZONE,
        GEMINI_PRICE_INPUT_PER_M=str(PRICES[0]),
        GEMINI_PRICE_OUTPUT_PER_M=str(PRICES[1]),
        NOTIFY_BACKOFF_BASE="30",  # the cafe meeting 502s stays "retrying" while the tests look
        NOTIFY_BACKOFF_MAX="300",
        NOTIFY_MAX_ATTEMPTS="8",
    )
    proc = start_worker(env, tmp_path_factory.mktemp("console"))
    yield proc
    proc.stop()
    assert OPS_TOKEN not in proc.logs(), "OPS_TOKEN leaked into the worker's log"


@pytest.fixture(scope="module")
def settings(worker) -> Settings:
    return Settings.from_env(worker.env)


async def _burst(settings: Settings, telegram) -> Burst:
    factory = Factory(settings.database_url)
    try:
        cafes = {}
        for role, name, chat_id, enabled, ordered in (
            ("sent", "Soup & Co", -7_100_001, True, True),
            ("hostile", HOSTILE, -7_100_002, True, True),
            ("empty", "Empty Canteen", -7_100_003, True, False),
            ("disabled", "Quiet Cafe", -7_100_004, False, True),
            ("kicked", "Kicked Cafe", -7_100_005, True, True),
            ("flaky", "Flaky Diner", -7_100_006, True, True),
        ):
            cafe = await factory.cafe(name, chat_id=chat_id, enabled=enabled)
            if ordered:
                await factory.order(await factory.user(f"{role} eater"), await factory.combo(cafe), today())
            cafes[role] = cafe.id
        telegram.script(-7_100_005, Reply.kicked())
        telegram.script(-7_100_006, *[Reply.server_error(502)] * 20)
        eaters = [await active_user(factory, name) for name in ("Batch Eater 1", "Batch Eater 2")]
    finally:
        await factory.close()
    redis = Redis.from_url(REDIS_URL)
    await redis.delete(*(cache_key(eater.id) for eater in eaters))  # made by an earlier run: would be skipped
    await redis.aclose()
    known = {b["batch_id"] for b in await batches(settings.web_port)}
    async with EventPublisher(settings) as publisher:
        for cafe_id in cafes.values():
            await publisher.deadline_passed(cafe_id, today())
        await publisher.send_raw("deadline-passed", b"garbage", key=b"1")
        await publisher.daily_task()

    async def settled() -> dict | None:
        states = json.loads((await get(settings, "/ops/api/digests/"))[1])["states"]
        statuses = sorted(s["status"] for s in states.values())
        done = [b for b in await batches(settings.web_port) if b["batch_id"] not in known and b["finished_at"]]
        expected = ["failed", "retrying", "sent", "sent", "skipped", "skipped"]
        return done[0] if statuses == expected and done else None

    return Burst(cafes, await eventually(settled, 60, 0.5))


@pytest.fixture(scope="module")
def burst(settings, telegram) -> Burst:
    return asyncio.run(_burst(settings, telegram))


async def get(settings: Settings, path: str, headers: dict | None = AUTH) -> tuple[int, str]:
    url = f"http://127.0.0.1:{settings.web_port}{path}"
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        return response.status, await response.text()


async def post(settings: Settings, path: str, *, data: dict | None = None, headers: dict | None = AUTH):
    url = f"http://127.0.0.1:{settings.web_port}{path}"
    async with aiohttp.ClientSession() as http, http.post(url, data=data or {}, headers=headers) as response:
        return response.status, await response.text()


async def test_the_page_says_whether_each_cafe_got_its_digest_and_why_not(burst, settings):
    status, page = await get(settings, "/ops/")
    assert status == 200
    for chip in ("all 6", "sent 2", "skipped 2", "retrying 1", "failed 1"):
        assert chip in page
    assert "Forbidden: bot was kicked from the group chat" in page
    assert "no orders" in page and "notifications disabled" in page
    assert HOSTILE not in page and "&lt;img src=x onerror=alert(1)&gt;" in page

    _, failed = await get(settings, "/ops/?status=failed")
    assert "Kicked Cafe" in failed and "Soup &amp; Co" not in failed
    _, flaky = await get(settings, f"/ops/?q={burst.cafes['flaky']}")
    assert "Flaky Diner" in flaky and "next attempt" in flaky and "Kicked Cafe" not in flaky
    _, by_name = await get(settings, "/ops/?q=soup")
    assert "Soup &amp; Co" in by_name and "Flaky Diner" not in by_name


async def test_a_batch_shows_its_tokens_and_cost(burst, settings, gemini):
    batch = burst.batch
    answers = [r for r in gemini.requests if r.status == 200]
    assert (batch["total"], batch["succeeded"], len(answers)) == (2, 2, 2)
    prompt = sum(round(len(r.prompt) / 4) for r in answers)
    assert batch["prompt_tokens"] == prompt and batch["output_tokens"] > 0
    assert batch["total_tokens"] == batch["prompt_tokens"] + batch["output_tokens"]
    cost = (batch["prompt_tokens"] * PRICES[0] + batch["output_tokens"] * PRICES[1]) / 1e6
    assert batch["estimated_cost"] == pytest.approx(cost, abs=1e-6)

    _, page = await get(settings, "/ops/")
    assert "2/2 (100%)" in page and f"{batch['prompt_tokens']:,} in" in page and f"${cost:.4f}" in page
    _, metrics = await get(settings, "/metrics")
    tokens = [line for line in metrics.splitlines() if line.startswith("lunch_gemini_prompt_tokens_total{")]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in tokens) == prompt


async def test_replay_needs_the_token_and_previews_a_dry_run_first(burst, settings, worker):
    status, page = await post(settings, "/ops/replay/", headers=None)
    assert status == 401 and "Authorization: Bearer" in page
    status, _ = await post(settings, "/ops/replay/", headers={"Authorization": "Bearer " + OPS_TOKEN[:-1]})
    assert status == 401
    assert "web: wrong OPS_TOKEN (Authorization header) from 127.0.0.1 for POST /ops/replay/" in worker.logs()
    status, _ = await get(settings, "/ops/replay/")  # a GET runs nothing, not even a dry run
    assert status == 405

    status, preview = await post(settings, "/ops/replay/", data={"dry_run": "1"})
    assert status == 200
    assert "1 letter(s) would be replayed; 1 cannot be" in preview
    assert "would go to digest-retries key" in preview and "cannot be replayed" in preview
    assert OPS_TOKEN not in preview
    logged = "replay-dead-letters --dry-run by 127.0.0.1 (bearer): 1 replayed, 1 unreplayable"
    await eventually(lambda: logged in worker.logs())
    _, page = await get(settings, "/ops/")
    assert "2 not replayed yet" in page and "1 of them replayable" in page  # a dry run replays nothing


@pytest.fixture
def browser():
    if not (CHROMEDRIVER.exists() and CHROMIUM.exists()):
        pytest.fail("no headless Chromium: the test command installs it (scripts/browser.sh)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1200"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def shows(browser: webdriver.Chrome, text: str, timeout: float = 10) -> bool:
    """Whether the page shows ``text`` within ``timeout``: after a click the old page may still be there, or
    going (its elements then go stale, or Chromium's inspector answers that the node left the document: seen
    once in CI, as a bare WebDriverException)."""
    wait = WebDriverWait(browser, timeout, ignored_exceptions=(StaleElementReferenceException, WebDriverException))
    return wait.until(lambda b: text in b.find_element(By.TAG_NAME, "body").text)


def test_an_operator_answers_the_three_questions_in_a_browser(burst, settings, worker, telegram, browser, tmp_path):
    console = f"http://127.0.0.1:{settings.web_port}/ops/"
    browser.get(console)  # not signed in: the sign-in form
    assert shows(browser, "OPS_TOKEN") and browser.current_url.startswith(
        f"http://127.0.0.1:{settings.web_port}/signin/"
    )
    browser.find_element(By.NAME, "token").send_keys("not-the-token-" * 3)
    browser.find_element(By.XPATH, "//button[contains(., 'Sign in')]").click()
    assert shows(browser, "Wrong OPS_TOKEN")
    browser.find_element(By.NAME, "token").send_keys(OPS_TOKEN)
    browser.find_element(By.XPATH, "//button[contains(., 'Sign in')]").click()
    assert shows(browser, "Digests of") and browser.current_url == console
    [cookie] = [c for c in browser.get_cookies() if c["name"].startswith("lunch_ops_") and c["value"]]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and OPS_TOKEN not in cookie["value"]
    text = browser.find_element(By.TAG_NAME, "body").text
    for chip in ("sent 2", "skipped 2", "retrying 1", "failed 1"):
        assert chip in text

    # Did cafe N get its digest today, and if not why?
    kicked = browser.find_element(By.XPATH, "//section[@id='digests']//tr[td[contains(., 'Kicked Cafe')]]")
    assert "failed" in kicked.text and "Forbidden: bot was kicked from the group chat" in kicked.text
    hostile = browser.find_element(By.XPATH, "//section[@id='digests']//tr[td[contains(., 'onerror')]]")
    assert HOSTILE in hostile.text and "sent" in hostile.text  # shown as text
    assert browser.find_elements(By.TAG_NAME, "img") == []
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.accept()

    # What did the batch cost?
    bar = browser.find_element(By.CSS_SELECTOR, "#batches .bar span")
    assert bar.size["width"] == pytest.approx(bar.find_element(By.XPATH, "..").size["width"], abs=1)
    row = browser.find_element(By.XPATH, "//section[@id='batches']//tbody/tr[1]")
    assert "2/2 (100%)" in row.text and "$0.0" in row.text and "finished" in row.text

    shot = tmp_path / "ops-console.png"  # what a person sees first
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    chrome = browser.execute_script("return window.outerHeight - window.innerHeight")
    browser.set_window_size(1100, browser.execute_script("return document.documentElement.scrollHeight") + chrome)
    browser.save_screenshot(str(tmp_path / "ops-console-full.png"))
    print(f"console screenshots: {tmp_path}")

    # Replay what failed: the dry run first, then the replay (the session and the forms' CSRF token are the proof).
    browser.find_element(By.XPATH, "//button[contains(., 'Preview a replay')]").click()
    assert shows(browser, "1 letter(s) would be replayed; 1 cannot be")
    assert browser.find_elements(By.NAME, "token") == []
    browser.find_element(By.XPATH, "//button[contains(., 'Replay 1 letter')]").click()
    assert shows(browser, "1 letter(s) replayed")
    browser.save_screenshot(str(tmp_path / "ops-replayed.png"))

    deadline = time.monotonic() + 30
    while not [m for m in telegram.messages if m.chat_id == -7_100_005 and m.delivered]:
        assert time.monotonic() < deadline, "the replayed digest was not delivered"
        time.sleep(0.2)
    for _ in range(20):  # the state is written just after Telegram's answer
        browser.get(f"{console}?q=Kicked")
        row = browser.find_element(By.XPATH, "//section[@id='digests']//tbody/tr[1]")
        if "sent" in row.text:
            break
        time.sleep(0.2)
    assert "Kicked Cafe" in row.text and "sent" in row.text

    browser.find_element(By.XPATH, "//button[contains(., 'Sign out')]").click()
    assert shows(browser, "OPS_TOKEN") and "/signin/" in browser.current_url
    browser.get(console)
    assert "/signin/" in browser.current_url  # the session is gone
    assert "web: wrong OPS_TOKEN (sign-in form) from 127.0.0.1" in worker.logs()
    assert "not-the-token-" not in worker.logs()  # a failed attempt is logged without the guess
