"""The browser tier: the resident's pages in headless Chromium (Debian's ``chromium``,
driven by Playwright) on the real stack, the services as separate processes as
``make up`` runs them. Screenshots at phone size go to ``docs/screenshots/``; axe-core
(``axe-playwright-python``) checks every page."""

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from axe_playwright_python.sync_playwright import Axe
from fastapi import FastAPI
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

from schemas.catalogue import catalogue
from services.settings import PROJECT_ROOT
from sotong import localstack
from sotong.localstack import ServiceProcess
from tests.conftest import Backends

# an expect() without its own timeout waits as long as any other step (Playwright's default
# is 5 s, short for a filing through portal, intake and the database on a loaded machine)
expect.set_options(timeout=20_000)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE: ViewportSize = {"width": 390, "height": 844}
SCREENSHOTS = PROJECT_ROOT / "docs" / "screenshots"
API_KEYS = {code: f"test-key-{code}" for code in catalogue().codes}
SERIOUS = ("serious", "critical")


@dataclass
class Stack:
    services: dict[str, ServiceProcess]
    env: dict[str, str]
    outbox: Path

    def outbox_texts(self, complaint_id: str) -> list[str]:
        """What the residents were sent about one complaint (the local outbox channel)."""
        if not self.outbox.exists():
            return []
        lines = self.outbox.read_text(encoding="utf-8").splitlines()
        return [
            m["text"]
            for m in map(json.loads, filter(None, lines))
            if m["complaint_id"] == complaint_id
        ]

    @property
    def portal(self) -> str:
        return self.services["portal"].url

    @property
    def intake(self) -> str:
        return self.services["intake"].url

    @property
    def tracker(self) -> str:
        return self.services["tracker"].url

    def act(self, complaint_id: str, department: str, **command: Any) -> None:
        """A department acts through intake's API with its own key."""
        response = httpx.post(
            f"{self.intake}/v1/complaints/{complaint_id}/commands",
            json=command,
            headers={"X-Api-Key": API_KEYS[department]},
            timeout=10,
        )
        assert response.status_code == 202, response.text


@pytest.fixture(scope="module")
def stack(backends: Backends, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("browser")
    suffix = root.name.replace("-", "_")[-16:]
    env = backends.env(database=f"browser_{suffix}", topic_prefix=f"browser{suffix}.") | {
        "SOTONG_NOTIFIER_OUTBOX_PATH": str(root / "outbox.jsonl"),
        "SOTONG_INTAKE_RELAY_INTERVAL_SECONDS": "0.5",
        "SOTONG_ROUTING_RELAY_INTERVAL_SECONDS": "0.5",
        "SOTONG_INTAKE_API_KEYS": json.dumps(API_KEYS),
        "SOTONG_TRACKER_API_KEYS": json.dumps(API_KEYS),
        "SOTONG_TRACKER_SSE_POLL_SECONDS": "0.2",
    }
    services = localstack.start_services(env, root / "logs")
    try:
        yield Stack(services, env, root / "outbox.jsonl")
    finally:
        for proc in services.values():
            proc.child.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[BrowserContext]:
    """A phone-sized browser with its own cookies, as one resident's phone."""
    context = browser.new_context(viewport=PHONE, locale="ko-KR", timezone_id="Asia/Seoul")
    context.set_default_timeout(20_000)
    try:
        yield context
    finally:
        context.close()


def accessible(page: Page, what: str) -> None:
    """axe-core on the page as it is now: no serious or critical violation."""
    results = Axe().run(page)
    bad = [v for v in results.response["violations"] if v.get("impact") in SERIOUS]
    assert not bad, f"{what}: " + "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in bad
    )


def fits_narrow_phone(page: Page, what: str) -> None:
    """Nothing needs horizontal scrolling at 360 px (a small phone) nor at 320 px (WCAG
    2.1 reflow: the width of a 1280 px window zoomed to 400%)."""
    size = page.viewport_size
    try:
        for width in (360, 320):
            page.set_viewport_size({"width": width, "height": 780})
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{what}: {overflow}px of horizontal scroll at {width} px"
    finally:
        if size is not None:
            page.set_viewport_size(size)


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    # from the top: a page scrolled down would photograph its sticky menu mid-page
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(path), full_page=True)
    return path


def wait_until(probe: Callable[[], Any], *, within: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


class InProcessServer:
    """An app served by uvicorn on a thread: the portal with a chatbot double, against the
    real intake and tracker processes."""

    def __init__(self, app: FastAPI) -> None:
        self.port = localstack.free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "InProcessServer":
        self.thread.start()
        wait_until(lambda: self.server.started, within=30, what="the in-process portal")
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
