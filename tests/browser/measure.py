"""How fast the portal answers a resident, on a running stack (``make up``); not a test.

    .venv/bin/python -m tests.browser.measure [PORTAL_URL] [INTAKE_URL] [KEYS_FILE] [N]

Prints the median and 90th percentile of: each page's server time (GET /, /file, the
timeline; POST /file including intake's filing), the time from filing until the page
shows the assigned handler, and from a department's command (intake answered 202) until
the open page shows it, over the live stream, in Debian's chromium at 390×844.
"""

import json
import statistics
import sys
import time
from pathlib import Path

import httpx
from playwright.sync_api import expect, sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, PHONE


def summary(name: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p90 = ordered[max(0, int(len(ordered) * 0.9) - 1)]
    print(
        f"{name:<38} median {statistics.median(ordered) * 1000:7.0f} ms   "
        f"p90 {p90 * 1000:7.0f} ms   (n={len(ordered)})"
    )


def main() -> None:
    portal = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8005"
    intake = sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:8001"
    keys = json.loads(Path(sys.argv[3] if len(sys.argv) > 3 else "var/api-keys.json").read_text())
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    times: dict[str, list[float]] = {}

    def timed(name: str, started: float) -> None:
        times.setdefault(name, []).append(time.perf_counter() - started)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=PHONE, locale="ko-KR")
        page = context.new_page()
        page.set_default_timeout(60_000)
        for n in range(rounds):
            page.goto(f"{portal}/file")
            page.get_by_label("민원 내용").fill(f"집 앞에 일주일째 쓰레기봉투가 쌓여 있어요 ({n})")
            started = time.perf_counter()
            page.get_by_role("button", name="민원 신청", exact=True).click()
            expect(page.get_by_text("민원이 접수됐습니다")).to_be_visible()
            timed("file: submit to receipt page", started)
            complaint_id = page.url.split("/complaints/")[1].split("?")[0]
            expect(page.locator("#progress")).to_contain_text("담당자:")
            timed("file: submit to handler shown (live)", started)
            department = "resource-circulation"
            if "자원순환과" not in page.locator("#progress").inner_text():
                continue
            started = time.perf_counter()
            response = httpx.post(
                f"{intake}/v1/complaints/{complaint_id}/commands",
                json={"action": "start_site_check"},
                headers={"X-Api-Key": keys[department]},
            )
            assert response.status_code == 202, response.text
            expect(page.locator("#progress")).to_contain_text("현장 확인 중")
            timed("department command to page (live)", started)
        cookies = {c["name"]: c["value"] for c in context.cookies()}
        browser.close()

    with httpx.Client(base_url=portal, cookies=cookies) as client:
        for path in ("/", "/file", f"/complaints/{complaint_id}", "/my"):
            for _ in range(rounds):
                started = time.perf_counter()
                assert client.get(path).status_code == 200
                timed("GET /complaints/{id}" if "/complaints/" in path else f"GET {path}", started)
    for name, samples in times.items():
        summary(name, samples)


if __name__ == "__main__":
    main()
