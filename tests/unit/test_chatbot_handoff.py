"""The chatbot's HTTP collaborators, against in-memory transports: what it sends intake
and routing, and how their failures become answers rather than errors."""

import json

import httpx
import pytest

from portal.chatbot import (
    Classification,
    ClassifierUnavailable,
    CodeOutcome,
    Filing,
    FilingFailed,
    IntakeFiler,
    RoutingClassifier,
    Turn,
)
from portal.chatbot.handoff import FilingUnavailable, transcript_payload


def filing(**changes: object) -> Filing:
    fields: dict[str, object] = {
        "text": "집 앞에 쓰레기가 쌓여 있어요",
        "department": "resource-circulation",
        "channel": "kakao",
        "transcript": (
            Turn("resident", "집 앞에 쓰레기가 쌓여 있어요"),
            Turn("bot", "접수할까요?"),
        ),
        "user_key_hash": "a" * 64,
        "offer_id": "offer-1",
    }
    return Filing(**(fields | changes))  # type: ignore[arg-type]


async def test_a_filing_is_posted_to_intake_with_its_channel_transcript_and_ref() -> None:
    seen: list[httpx.Request] = []

    def intake(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"receipt_number": "261202-000123"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(intake)) as client:
        filer = IntakeFiler(client, "http://intake/", api_key="channel-key")
        receipt = await filer(filing(service_code="waste-household"))
        again = await filer(filing(service_code="waste-household"))
        keyless = IntakeFiler(client, "http://intake")

    assert receipt.receipt_number == again.receipt_number == "261202-000123"
    assert not receipt.code_pending  # no phone, no code
    first, second = (json.loads(r.content) for r in seen)
    assert str(seen[0].url) == "http://intake/v1/complaints"
    assert seen[0].headers["X-Api-Key"] == "channel-key"
    assert first["channel"] == "kakao"
    assert first["body"] == "집 앞에 쓰레기가 쌓여 있어요"
    assert first["service_code"] == "waste-household"
    assert first["transcript"][1] == {"role": "bot", "text": "접수할까요?"}
    assert first["channel_ref"] == second["channel_ref"]  # a retried confirmation files once
    assert "a" * 64 not in first["channel_ref"]
    assert seen[0].headers["X-End-User"] == "a" * 64  # the keyed hash, never the Kakao id
    assert "X-Api-Key" not in keyless.headers


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(422, json={"error": {"code": "invalid_request"}}), FilingFailed),
        (httpx.ConnectError("refused"), FilingUnavailable),
    ],
)
async def test_intake_refusing_or_unreachable_is_a_failed_filing(
    answer: httpx.Response | Exception, error: type[Exception]
) -> None:
    def intake(request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return answer

    async with httpx.AsyncClient(transport=httpx.MockTransport(intake)) as client:
        with pytest.raises(error):
            await IntakeFiler(client, "http://intake")(filing())


def test_the_transcript_is_cut_to_the_contracts_bounds() -> None:
    turns = [Turn("resident", f"{n} " + "가" * 2000) for n in range(50)] + [Turn("bot", " ")]

    payload = transcript_payload(turns)

    assert len(payload) == 40
    assert payload[0]["text"].startswith("10 ")
    assert all(len(t["text"]) <= 1000 for t in payload)


async def test_routing_answers_become_classifications() -> None:
    def routing(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content) == {"texts": ["가로등이 꺼졌어요"]}
        return httpx.Response(
            200, json={"predictions": [{"department": "roads", "confidence": 0.91, "auto": True}]}
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(routing)) as client:
        found = await RoutingClassifier(client, "http://routing")("가로등이 꺼졌어요")

    assert found == Classification("roads", 0.91, True)


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(503, json={"error": {"code": "unavailable"}}),
        httpx.Response(200, json={"predictions": []}),
        httpx.Response(200, text="not json"),
    ],
)
async def test_routing_failing_in_any_way_is_classifier_unavailable(
    answer: httpx.Response,
) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda _: answer)) as client:
        with pytest.raises(ClassifierUnavailable):
            await RoutingClassifier(client, "http://routing")("가로등")


async def test_assembled_from_settings_the_kakao_skill_files_through_intake() -> None:
    from fastapi import FastAPI

    from portal.chatbot import ChatbotSettings, assemble
    from portal.chatbot.retrieval import Morphemes

    filed: list[dict[str, object]] = []

    def services(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/classify":
            prediction = {"department": "resource-circulation", "confidence": 0.9, "auto": True}
            return httpx.Response(200, json={"predictions": [prediction]})
        filed.append(json.loads(request.content))
        return httpx.Response(201, json={"receipt_number": "261202-000007"})

    settings = ChatbotSettings(routing_url="http://routing", intake_url="http://intake")
    async with httpx.AsyncClient(transport=httpx.MockTransport(services)) as client:
        parts = assemble(settings, client, morphemes=Morphemes())
        app = FastAPI()
        app.include_router(parts.kakao)
        portal = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://p")
        async with portal:
            for said in ("집 앞에 쓰레기가 쌓여 있어요", "네, 접수할게요"):
                user = {"id": "u-1"}
                answer = await portal.post(
                    "/kakao/skill", json={"userRequest": {"utterance": said, "user": user}}
                )

    assert "261202-000007" in answer.json()["template"]["outputs"][0]["simpleText"]["text"]
    assert [(f["channel"], f["body"]) for f in filed] == [("kakao", "집 앞에 쓰레기가 쌓여 있어요")]
    assert parts.bot.thresholds == settings.thresholds


async def test_a_phone_is_filed_with_consent_and_its_code_confirmed_through_intake() -> None:
    seen: list[httpx.Request] = []
    cid = "0b7f3c1e-8d2a-4c47-9a53-2f1e6d0c9b11"
    answers = {
        "/v1/complaints": httpx.Response(
            201,
            json={
                "complaint_id": cid,
                "receipt_number": "261202-000124",
                "tracking_token": "tt" * 11,
                "resident_token": "rr" * 11,
                "duplicate": False,
                "contact": {"confirmation_required": True, "code_sent": True},
            },
        ),
        f"/v1/complaints/{cid}/contact/confirm": httpx.Response(
            422, json={"error": {"code": "wrong_code", "message": "code: not the code sent"}}
        ),
        f"/v1/complaints/{cid}/contact/code": httpx.Response(
            429, json={"error": {"code": "rate_limited", "message": "client: too many"}}
        ),
    }

    def intake(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[request.url.path]

    async with httpx.AsyncClient(transport=httpx.MockTransport(intake)) as client:
        filer = IntakeFiler(client, "http://intake", api_key="kakao-key")
        receipt = await filer(filing(phone="010-2345-6789"))
        wrong = await filer.confirm(cid, "tt" * 11, "123456", "a" * 64)
        limited = await filer.resend(cid, "tt" * 11, "a" * 64)

    assert (receipt.complaint_id, receipt.code_pending) == (cid, True)
    assert "tt" not in repr(receipt)  # the token stays out of logs
    body = json.loads(seen[0].content)
    assert body["resident"] == {"phone": "010-2345-6789", "notification_consent": True}
    assert (wrong, limited) == (CodeOutcome.WRONG, CodeOutcome.LIMITED)
    confirm = seen[1]
    assert json.loads(confirm.content) == {"code": "123456"}
    assert confirm.headers["X-Tracking-Token"] == "tt" * 11
    assert confirm.headers["X-End-User"] == "a" * 64  # intake limits this Kakao user
    assert "phone" not in repr(filing(phone="010-2345-6789"))
