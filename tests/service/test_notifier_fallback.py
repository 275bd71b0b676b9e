"""Delivery with the real adapters against real peers (HTTP providers, a webhook receiver,
SMTP) and the real MongoDB: who is told, retries, 대체발송, dead letters, exactly once."""

import base64
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from notifier.channel import Channel, Message
from notifier.outbox import OutboxChannel
from notifier.store import Claim, DeliveryStatus, MongoNotifierStore
from schemas import ComplaintDeadlineAlert, ComplaintStatusChanged, Resident
from schemas.events import AlertKind, HandlerRef, Outcome
from services.errors import RetryableError
from services.mongo import Document
from tests.service.test_notifier_peers import (
    HOOK_SECRET,
    Peers,
    Servers,
    alimtalk_channel,
    email_channel,
    servers,
    sms_channel,
    webhook_channel,
)
from tests.unit.test_notifier_delivery import NOW, PHONE, Harness, build, filed, new_id

EMAIL = "hong@example.kr"
NOT_KAKAO_USER = "alimtalk provider answered 400 NOT_KAKAO_USER"
HANDLER = HandlerRef(handler_id="roads-1", name="김도로", office_phone="032-560-5101")
SUPERVISOR = HandlerRef(handler_id="roads-chief", name="박과장", office_phone="032-560-5100")
HANDLER_MOBILE, SUPERVISOR_MOBILE = "010-0000-5101", "010-0000-5100"
"""Their work mobiles in the tests' staff directory (tests.fakes.notifier.STAFF)."""


@dataclass
class World:
    h: Harness[MongoNotifierStore]
    peers: Peers


@pytest.fixture(scope="module")
def running() -> Iterator[Servers]:
    with servers() as started:
        yield started


@pytest.fixture
async def world(
    running: Servers, mongo_db: AsyncDatabase[Document], tmp_path: Path
) -> AsyncIterator[World]:
    peers = running.fresh()
    async with httpx.AsyncClient(timeout=0.3) as client:
        channels: dict[str, Channel] = {
            "alimtalk": alimtalk_channel(client, peers.alimtalk),
            "sms": sms_channel(client, peers.sms),
            "email": email_channel(peers.smtp),
            "webhook": webhook_channel(client, peers.hooks),
        }
        h = build(
            MongoNotifierStore(mongo_db),
            OutboxChannel(tmp_path / "outbox.jsonl"),
            channels,
            webhooks=frozenset({"roads"}),
        )
        await h.store.ensure_indexes()
        yield World(h, peers)


def step(
    complaint_id: str, to_state: str, trigger: str, **fields: object
) -> ComplaintStatusChanged:
    return ComplaintStatusChanged.model_validate(
        {
            "complaint_id": complaint_id,
            "receipt_number": "251125-000042",
            "sequence": 3,
            "from_state": "assigned",
            "to_state": to_state,
            "trigger": trigger,
            "department": "roads",
            "department_name": "도로과",
            "handler": HANDLER,
            "actor": "routing",
            "due_at": NOW + timedelta(days=7),
            **fields,
        }
    )


def handed_over(complaint_id: str, **fields: object) -> ComplaintStatusChanged:
    return step(complaint_id, "handler_assigned", "assign_handler", **fields)


async def resident_of(world: World, *, phone: str | None = PHONE, email: str | None = None) -> str:
    """A new complaint whose resident left this phone and address."""
    cid = new_id()
    event = filed(cid, phone=phone)
    resident = Resident(name="홍길동", phone=phone, email=email)
    await world.h.delivery.remember_recipient(event.model_copy(update={"resident": resident}))
    return cid


def sent(channel: str, detail: str | None = None) -> tuple[str, Outcome, str | None]:
    return (channel, Outcome.SENT, detail)


async def test_a_step_reaches_resident_handler_and_department_once_each(world: World) -> None:
    cid = await resident_of(world)
    event = handed_over(cid)
    await world.h.delivery.notify(event, correlation_id="corr-1")
    await world.h.delivery.notify(event, correlation_id="corr-1")

    alimtalk = world.peers.alimtalk
    [to_resident] = alimtalk.accepted_for(PHONE)
    [to_handler] = world.peers.sms.accepted_for(HANDLER_MOBILE)
    assert len(alimtalk.requests) == 1, "the redelivery sent nothing"
    assert len(world.peers.sms.requests) == 1, "the redelivery sent nothing"
    assert to_resident.body["template_code"] == "SOTONG_HANDLER_ASSIGNED"
    assert "김도로" in to_resident.body["text"]
    assert "배정" in to_handler.body["text"]
    [hook] = world.peers.hooks.events()
    assert (hook["id"], hook["data"]["to_state"], hook["correlationid"]) == (
        event.event_id,
        "handler_assigned",
        "corr-1",
    )
    assert world.peers.alimtalk.requests_for(HANDLER.office_phone) == [], "not the landline"

    recorder = world.h.recorder
    assert recorder.by("resident") == [sent("alimtalk")]
    assert recorder.by("handler") == [sent("sms")]
    assert recorder.by("department:roads") == [sent("webhook")]
    assert {o.template for o in recorder.outcomes} == {
        "SOTONG_HANDLER_ASSIGNED",
        "SOTONG_STAFF_ASSIGNED",
        "cloudevent",
    }
    metric = world.h.metric
    assert metric("sotong_notifications_total", channel="alimtalk", outcome="sent") == 1
    assert metric("sotong_notifications_total", channel="sms", outcome="sent") == 1
    assert metric("sotong_notifications_total", channel="webhook", outcome="sent") == 1
    assert metric("sotong_notification_delivery_seconds_count", channel="alimtalk") == 1
    assert metric("sotong_notification_delivery_seconds_count", channel="webhook") == 1
    assert metric("sotong_duplicate_messages_total", consumer="notifier", topic="lc") == 1


async def test_a_5xx_is_retried_with_backoff_and_sent_once(world: World) -> None:
    world.peers.alimtalk.script.append(503)
    cid = await resident_of(world)
    await world.h.delivery.notify(step(cid, "site_check", "start_site_check"))

    assert len(world.peers.alimtalk.requests) == 2
    assert len(world.peers.alimtalk.accepted) == 1
    [outcome] = [o for o in world.h.recorder.outcomes if o.recipient == "resident"]
    assert (outcome.outcome, outcome.attempts) == (Outcome.SENT, 2)
    assert len(world.h.sleeps) == 1
    assert 0.005 <= world.h.sleeps[0] <= 0.01
    assert world.h.metric("sotong_notification_retries_total", channel="alimtalk") == 1


async def test_a_timeout_is_retried_to_the_cap_then_the_same_words_go_by_sms(world: World) -> None:
    world.peers.alimtalk.script.extend([1.0, 1.0, 1.0])
    cid = await resident_of(world)
    event = step(cid, "site_check", "start_site_check", note="내일 오전 방문")
    await world.h.delivery.notify(event)

    assert len(world.peers.alimtalk.requests) == 3
    assert world.peers.alimtalk.accepted == []
    [by_sms] = world.peers.sms.accepted_for(PHONE)
    assert by_sms.body["text"] == world.peers.alimtalk.requests[0].body["text"], "same content"
    assert by_sms.body["type"] == "LMS", "with its tracking link a step is past 90 bytes"
    [failed, fallback] = world.h.recorder.by("resident")
    assert failed[:2] == ("alimtalk", Outcome.FAILED)
    assert "timed out" in (failed[2] or "")
    assert "gave up after 3 attempts" in (failed[2] or "")
    assert fallback == sent("sms", "fallback from alimtalk")
    assert len(world.h.sleeps) == 2
    assert world.h.sleeps[1] >= world.h.sleeps[0] / 2, "backoff grows (with jitter)"
    metric = world.h.metric
    assert metric("sotong_notifications_total", channel="alimtalk", outcome="failed") == 1
    assert metric("sotong_notifications_total", channel="sms", outcome="fallback") == 1
    assert metric("sotong_notifications_total", channel="sms", outcome="sent") == 0
    assert metric("sotong_notification_retries_total", channel="alimtalk") == 2
    assert world.h.letters == [], "the resident was reached"


async def test_a_4xx_is_not_retried_and_falls_back_to_sms_once(world: World) -> None:
    world.peers.alimtalk.refuse(PHONE, "NOT_KAKAO_USER")
    cid = await resident_of(world)
    event = step(cid, "site_check", "start_site_check")
    await world.h.delivery.notify(event)
    await world.h.delivery.notify(event)

    assert len(world.peers.alimtalk.requests_for(PHONE)) == 1
    assert len(world.peers.sms.requests_for(PHONE)) == 1
    assert world.h.sleeps == []
    assert world.h.recorder.by("resident") == [
        (
            "alimtalk",
            Outcome.FAILED,
            "PermanentError: alimtalk provider answered 400 NOT_KAKAO_USER",
        ),
        sent("sms", "fallback from alimtalk"),
    ]
    sms_record = await world.h.record(f"{event.event_id}:resident:sms")
    assert sms_record.fallback_from == "alimtalk"


async def test_a_long_result_falls_back_as_an_lms(world: World) -> None:
    world.peers.alimtalk.refuse(PHONE, "BLOCKED", status=403)
    cid = await resident_of(world)
    note = "요청하신 도로 파손 부위를 보수했습니다. 불편을 드려 죄송합니다."
    await world.h.delivery.notify(step(cid, "resolved", "resolve", note=note))
    [lms] = world.peers.sms.accepted_for(PHONE)
    assert lms.body["type"] == "LMS"
    assert "처리 결과: " + note in lms.body["text"].splitlines()


async def test_when_every_channel_fails_the_outcome_is_failed_and_dead_lettered_once(
    world: World,
) -> None:
    world.peers.alimtalk.refuse(PHONE, "NOT_KAKAO_USER")
    world.peers.sms.script.extend([500, 500, 500])
    cid = await resident_of(world)
    event = step(cid, "site_check", "start_site_check")
    await world.h.delivery.notify(event)
    await world.h.delivery.notify(event)

    assert len(world.peers.sms.requests) == 3
    [failed_alimtalk, failed_sms] = world.h.recorder.by("resident")
    assert failed_alimtalk[:2] == ("alimtalk", Outcome.FAILED)
    assert failed_sms[:2] == ("sms", Outcome.FAILED)
    assert "gave up after 3 attempts" in (failed_sms[2] or "")
    [letter] = world.h.letters
    assert letter.consumer == "notifier"
    assert letter.retryable, "it gave up on retryable errors: a replay may succeed"
    assert "alimtalk: PermanentError" in letter.reason
    assert "sms: ChannelRetryable" in letter.reason
    assert PHONE.replace("-", "") not in letter.reason
    assert (
        ComplaintStatusChanged.model_validate_json(base64.b64decode(letter.original_value_b64))
        == event
    )
    record = await world.h.record(f"{event.event_id}:resident:sms")
    assert (record.status, record.final, record.dead_lettered) == ("failed", True, True)
    assert world.h.metric("sotong_notifications_total", channel="sms", outcome="failed") == 1


async def test_an_address_is_the_last_resort_after_both_phone_channels(world: World) -> None:
    world.peers.alimtalk.refuse(PHONE)
    world.peers.sms.refuse(PHONE, "INVALID_NUMBER")
    cid = await resident_of(world, email=EMAIL)
    await world.h.delivery.notify(step(cid, "reviewing", "start_review"))

    [mail] = world.peers.smtp.sink.messages
    body = mail.get_body()
    assert body is not None
    assert "현재 심사 중입니다" in body.get_content()
    assert world.h.recorder.by("resident")[-1] == sent("email", "fallback from alimtalk, sms")
    assert world.h.letters == []


async def test_a_resident_with_only_an_address_gets_email(world: World) -> None:
    cid = await resident_of(world, phone=None, email=EMAIL)
    await world.h.delivery.notify(step(cid, "reviewing", "start_review"))
    [mail] = world.peers.smtp.sink.messages
    assert mail["To"] == EMAIL
    assert world.h.recorder.by("resident") == [sent("email")]
    assert world.peers.alimtalk.accepted_for(PHONE) == []


async def test_a_send_interrupted_after_the_provider_accepted_is_not_sent_twice(
    world: World,
) -> None:
    """The earlier attempt claimed, the provider accepted, and the process died before
    the ledger heard. The redelivery sends again with the same key; the provider drops it."""
    cid = await resident_of(world)
    event = step(cid, "site_check", "start_site_check")
    did = f"{event.event_id}:resident:alimtalk"
    await world.h.store.claim(
        Claim(
            delivery_id=did,
            complaint_id=cid,
            source_event_id=event.event_id,
            recipient="resident",
            channel="alimtalk",
            template_code="SOTONG_SITE_CHECK",
        ),
        now=NOW,
    )
    plan = world.h.delivery.audience.plan(event, await world.h.store.recipient(cid))
    first = Message(
        delivery_id=did,
        complaint_id=cid,
        receipt_number=event.receipt_number,
        recipient="resident",
        state=event.to_state,
        content=plan[0].content,
        phone=PHONE,
    )
    await world.h.delivery.channels["alimtalk"].deliver(first)

    await world.h.delivery.notify(event)

    assert len(world.peers.alimtalk.accepted_for(PHONE)) == 1
    assert world.peers.alimtalk.repeats == 1
    [outcome] = [o for o in world.h.recorder.outcomes if o.recipient == "resident"]
    assert (outcome.outcome, outcome.attempts) == (Outcome.SENT, 2)


async def test_a_crash_between_failure_and_fallback_resumes_with_the_fallback(
    world: World,
) -> None:
    world.peers.alimtalk.refuse(PHONE)
    cid = await resident_of(world)
    event = step(cid, "site_check", "start_site_check")
    did = f"{event.event_id}:resident:alimtalk"
    await world.h.store.claim(
        Claim(
            delivery_id=did,
            complaint_id=cid,
            source_event_id=event.event_id,
            recipient="resident",
            channel="alimtalk",
            template_code="SOTONG_SITE_CHECK",
        ),
        now=NOW,
    )
    await world.h.store.finish(
        did, DeliveryStatus.FAILED, now=NOW, detail="PermanentError: refused", final=False
    )

    await world.h.delivery.notify(event)

    assert world.peers.alimtalk.requests == []
    assert len(world.peers.sms.accepted_for(PHONE)) == 1
    assert world.h.recorder.by("resident") == [
        ("alimtalk", Outcome.FAILED, "PermanentError: refused"),
        sent("sms", "fallback from alimtalk"),
    ]


async def test_without_consent_the_resident_is_skipped_and_the_handler_still_told(
    world: World,
) -> None:
    cid = new_id()
    await world.h.delivery.remember_recipient(filed(cid, consent=False))
    await world.h.delivery.notify(handed_over(cid))
    assert world.peers.alimtalk.accepted_for(PHONE) == []
    assert len(world.peers.sms.accepted_for(HANDLER_MOBILE)) == 1
    assert world.h.recorder.by("resident") == [
        ("alimtalk", Outcome.SKIPPED, "resident did not consent to notifications")
    ]


async def test_a_template_error_fails_the_person_but_not_the_department(world: World) -> None:
    cid = await resident_of(world)
    await world.h.delivery.notify(step(cid, "assigned", "assign", department_name=None))
    assert world.peers.alimtalk.requests == []
    [(channel, outcome, detail)] = world.h.recorder.by("resident")
    assert (channel, outcome) == ("alimtalk", Outcome.FAILED)
    assert "missing variable(s)" in (detail or "")
    assert world.peers.sms.requests == [], "no fallback: the words are wrong everywhere"
    assert len(world.peers.hooks.accepted) == 1
    assert len(world.h.letters) == 1


async def test_a_webhook_5xx_is_retried_and_signed_afresh(world: World) -> None:
    world.peers.hooks.script.append(500)
    cid = await resident_of(world)
    await world.h.delivery.notify(step(cid, "reviewing", "start_review"))
    assert len(world.peers.hooks.requests) == 2
    [accepted] = world.peers.hooks.accepted
    assert accepted.body["type"] == "kr.go.sotong.complaint.status_changed.v1"
    assert world.peers.hooks.refused_signatures == 0
    assert HOOK_SECRET not in accepted.raw.decode()
    [outcome] = [o for o in world.h.recorder.outcomes if o.channel == "webhook"]
    assert (outcome.outcome, outcome.attempts) == (Outcome.SENT, 2)


async def test_only_the_departments_own_events_go_to_its_webhook(world: World) -> None:
    cid = await resident_of(world)
    await world.h.delivery.notify(step(cid, "reviewing", "start_review", department="parks"))
    assert world.peers.hooks.requests == []


def deadline(complaint_id: str, kind: AlertKind) -> ComplaintDeadlineAlert:
    return ComplaintDeadlineAlert(
        complaint_id=complaint_id,
        receipt_number="251125-000042",
        kind=kind,
        state="site_check",
        department="roads",
        department_name="도로과",
        handler=HANDLER,
        supervisor=SUPERVISOR,
        received_at=NOW,
        due_at=NOW + timedelta(days=7),
    )


async def test_a_deadline_breach_tells_the_supervisor_and_the_handler(world: World) -> None:
    cid = await resident_of(world)
    alert = deadline(cid, AlertKind.BREACH)
    await world.h.delivery.alert(alert)
    await world.h.delivery.alert(alert)

    [to_supervisor] = world.peers.sms.accepted_for(SUPERVISOR_MOBILE)
    [to_handler] = world.peers.sms.accepted_for(HANDLER_MOBILE)
    assert to_supervisor.body["from"] == "0325600000"
    assert "도로과" in to_supervisor.body["text"]
    assert "251125-000042" in to_supervisor.body["text"]
    assert to_handler.body["to"] == "01000005101"
    assert world.peers.alimtalk.requests == [], "not the resident's business, not a landline"
    assert len(world.peers.sms.requests) == 2, "the redelivery sent nothing"
    [hook] = world.peers.hooks.events()
    assert hook["type"] == "kr.go.sotong.complaint.deadline_alert.v1"
    assert world.h.recorder.by("supervisor") == [sent("sms")]
    [outcome] = [o for o in world.h.recorder.outcomes if o.recipient == "supervisor"]
    assert outcome.template == "SOTONG_SLA_BREACHED"


async def test_a_supervisor_whose_mobile_is_refused_gets_the_breach_by_email(
    world: World,
) -> None:
    world.peers.sms.refuse(SUPERVISOR_MOBILE, "INVALID_NUMBER")
    cid = await resident_of(world)
    await world.h.delivery.alert(deadline(cid, AlertKind.BREACH))

    [mail] = [m for m in world.peers.smtp.sink.messages if "roads-chief@" in m["To"]]
    assert "도로과" in mail.get_content()
    assert world.h.recorder.by("supervisor") == [
        ("sms", Outcome.FAILED, "PermanentError: sms gateway answered 400 INVALID_NUMBER"),
        sent("email", "fallback from sms"),
    ]


async def test_the_progress_notice_waits_for_a_resident_not_yet_known(world: World) -> None:
    with pytest.raises(RetryableError, match="not known yet"):
        await world.h.delivery.alert(deadline(new_id(), AlertKind.PROGRESS_NOTICE))
    cid = await resident_of(world)
    await world.h.delivery.alert(deadline(cid, AlertKind.PROGRESS_NOTICE))
    [notice] = world.peers.alimtalk.accepted_for(PHONE)
    assert notice.body["template_code"] == "SOTONG_PROGRESS_NOTICE"
