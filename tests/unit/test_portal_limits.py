"""The portal's abuse limits in memory: its form posts per client address, and the
credential and end user it passes to intake and tracker so they limit each resident."""

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from portal.app import create_app
from portal.clients import END_USER, Filed, HttpIntake, HttpTracker, Refused
from portal.settings import PortalSettings
from tests.fakes.portal import T0, FakeChatbot, FakeIntake, FakePortalStore, FakeTracker
from tests.unit.test_portal_pages import Portal, filed_and_assigned
from tests.unit.test_portal_pages import portal as portal_pages

__all__ = ["portal_pages"]  # the page tests' fixture, under another name here

BODY = "집 앞에 일주일째 쓰레기봉투가 쌓여 있어요"


def portal_client(settings: PortalSettings, address: str) -> httpx.AsyncClient:
    app = create_app(
        settings,
        intake=FakeIntake(),
        tracker=FakeTracker(),
        store=FakePortalStore(),
        chatbot=FakeChatbot(answers={}),
        clock=lambda: T0,
    )
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://portal.test")


@pytest.fixture
async def portal() -> AsyncIterator[httpx.AsyncClient]:
    async with portal_client(PortalSettings(filings_per_minute=2), "198.51.100.20") as client:
        yield client


async def file(client: httpx.AsyncClient) -> httpx.Response:
    form = await client.get("/file")
    submission_id = re.search(r'name="submission_id" value="([^"]+)"', form.text)
    assert submission_id is not None
    return await client.post("/file", data={"submission_id": submission_id.group(1), "body": BODY})


async def test_a_burst_of_filings_from_one_address_is_asked_to_wait(
    portal: httpx.AsyncClient,
) -> None:
    codes = [(await file(portal)).status_code for _ in range(2)]
    refused = await file(portal)
    assert codes == [303, 303]
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "30"
    assert refused.headers["content-type"].startswith("text/html")  # a page, not JSON
    assert "요청이 너무 잦아요. 30초 뒤에 다시 시도해 주세요." in refused.text
    assert '<html lang="ko"' in refused.text
    assert (await portal.get("/file")).status_code == 200  # reading has its own limit


async def test_the_portal_names_the_resident_to_intake_and_tracker_with_its_credential() -> None:
    seen: list[httpx.Request] = []

    def backend(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v1/complaints":
            return httpx.Response(
                201,
                json={
                    "complaint_id": "c1",
                    "receipt_number": "261202-000001",
                    "tracking_token": "t" * 22,
                    "resident_token": "r" * 22,
                    "duplicate": False,
                },
            )
        return httpx.Response(200, json={"items": []})

    async with httpx.AsyncClient(transport=httpx.MockTransport(backend)) as client:
        intake = HttpIntake(client, "http://intake", {"web": "web-credential"})
        tracker = HttpTracker(client, "http://tracker", key="tracker-credential")
        token = END_USER.set("203.0.113.5")
        try:
            await intake.file({"channel": "web", "channel_ref": "portal-1", "body": BODY})
            await intake.file({"channel": "chatbot", "channel_ref": "portal-chat-1", "body": BODY})
            await tracker.my_complaints("r" * 22)
            await intake.resident_action("c1", action="withdraw", token="t" * 22, note=None)
            await intake.confirm_contact("c1", token="t" * 22, code="123456")
            await intake.upload_photo(b"\x89PNG\r\n\x1a\n", "p.png", "image/png")
        finally:
            END_USER.reset(token)
        await intake.file({"channel": "web", "channel_ref": "portal-2", "body": BODY})

    web, chatbot, reads, action, code, photo, outside = seen
    # a resident's action, code and photo upload name the resident too, with the credential
    for request in (action, code, photo):
        assert (request.headers["X-Api-Key"], request.headers["X-End-User"]) == (
            "web-credential",
            "203.0.113.5",
        )
    assert code.headers["X-Tracking-Token"] == "t" * 22
    assert (web.headers["X-Api-Key"], web.headers["X-End-User"]) == (
        "web-credential",
        "203.0.113.5",
    )
    assert json.loads(web.content)["channel"] == "web"
    # no credential for the chatbot channel: nothing claimed, the end user not sent either
    assert "X-Api-Key" not in chatbot.headers
    assert "X-End-User" not in chatbot.headers
    assert reads.headers["X-Api-Key"] == "tracker-credential"
    assert reads.headers["X-End-User"] == "203.0.113.5"
    assert "X-End-User" not in outside.headers  # no request of a resident's: nobody named


async def test_the_portals_settings_carry_its_credentials() -> None:
    settings = PortalSettings(
        intake_keys={"web": SecretStr("secret-web-key")}, tracker_key=SecretStr("secret-t")
    )
    assert settings.intake_keys["web"].get_secret_value() == "secret-web-key"
    assert "secret-" not in repr(settings)


class LimitedIntake(FakeIntake):
    async def file(self, body: dict[str, Any]) -> Filed | Refused:
        return Refused(429, "phone: too many filings with this number (at most 10 a day)")


async def test_intakes_limit_reaches_the_resident_in_korean_with_the_form_kept() -> None:
    app = create_app(
        PortalSettings(),
        intake=LimitedIntake(),
        tracker=FakeTracker(),
        store=FakePortalStore(),
        chatbot=FakeChatbot(answers={}),
        clock=lambda: T0,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://portal.test") as client:
        page = await file(client)
    assert page.status_code == 422
    assert "지금은 더 신청할 수 없어요" in page.text
    assert "too many" not in page.text
    assert BODY in page.text  # what was typed is still there


async def test_page_views_from_one_address_are_limited_with_a_page_in_korean() -> None:
    settings = PortalSettings(pages_per_minute=3, static_per_minute=5)
    async with portal_client(settings, "198.51.100.30") as client:
        pages = [(await client.get(path)).status_code for path in ("/", "/my", "/chat")]
        refused = await client.get("/favourites")
        # static files have their own, higher budget; probes and metrics none
        static = [(await client.get("/static/portal.css")).status_code for _ in range(5)]
        static_refused = await client.get("/static/htmx.min.js")
        probes = [(await client.get(p)).status_code for p in ("/healthz", "/metrics") * 3]
        # a form post is limited apart (and HEAD counts as a page view)
        head = await client.head("/")
        metrics = (await client.get("/metrics")).text
    async with portal_client(settings, "198.51.100.31") as other:
        elsewhere = await other.get("/")

    assert pages == [200, 200, 200]
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("text/html")
    assert refused.headers["Retry-After"] == "20"
    assert "요청이 너무 잦아요. 20초 뒤에 다시 시도해 주세요." in refused.text
    assert "<h1>잠시 후 다시 시도해 주세요</h1>" in refused.text
    assert static == [200] * 5
    assert static_refused.status_code == 429
    assert probes == [200] * 6
    assert head.status_code == 429
    assert 'sotong_rate_limited_total{limit="pages",service="portal"} 2.0' in metrics
    assert 'sotong_rate_limited_total{limit="static",service="portal"} 1.0' in metrics
    assert elsewhere.status_code == 200  # another address is not held back


async def test_resident_actions_refused_by_intakes_limit_are_said_in_korean(
    portal_pages: Portal, monkeypatch: pytest.MonkeyPatch
) -> None:
    complaint_id = await filed_and_assigned(portal_pages)

    async def limited(*_: Any, **__: Any) -> Refused:
        return Refused(429, "client: too many resident actions", code="rate_limited")

    monkeypatch.setattr(portal_pages.intake, "resident_action", limited)
    page = await portal_pages.client.post(
        f"/complaints/{complaint_id}/withdraw", data={"note": "해결됐어요"}
    )

    assert page.status_code == 422
    assert "지금은 요청이 너무 잦아요." in page.text
    assert "too many" not in page.text
    assert "해결됐어요" in page.text  # what was typed is kept


async def test_acting_on_a_complaint_has_a_budget_apart_from_filing() -> None:
    settings = PortalSettings(filings_per_minute=1, actions_per_minute=2)
    async with portal_client(settings, "198.51.100.40") as client:
        filed = await file(client)
        complaint = filed.headers["location"].split("/")[2].split("?")[0]
        codes = [
            (await client.post(f"/complaints/{complaint}/contact", data={"code": "123456"}))
            for _ in range(2)
        ]
        refused = await client.post(f"/complaints/{complaint}/rate", data={"rating": "5"})
        star = await client.post("/favourites", data={"path": "/my", "label": "내 민원"})
        metrics = (await client.get("/metrics")).text

    assert filed.status_code == 303  # filing's budget (1) is not the actions' (2)
    assert [c.status_code for c in codes] == [422, 422]  # judged: a wrong code
    assert refused.status_code == star.status_code == 429
    assert "요청이 너무 잦아요." in refused.text
    assert 'sotong_rate_limited_total{limit="actions",service="portal"} 2.0' in metrics
