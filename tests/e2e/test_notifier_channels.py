"""The notifier as a new user would try it: real processes, real Kafka and MongoDB, and
stand-in providers on this machine — a BizMessage (AlimTalk) provider that refuses one
phone number, an SMS gateway, a department's webhook receiver.

This module's stack runs its own notifier process configured for those providers, in
place of the stack's outbox-only one (same topics, same database, same consumer groups).
"""

import io
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from pymongo import AsyncMongoClient

from notifier.mongo.ledger import DELIVERIES
from notifier.outcomes import NO_CONTACT
from notifier.staff import StaffDirectory
from schemas import topics
from services.mongo import Document
from sotong import localstack
from sotong.localstack import ServiceProcess
from tests.e2e.conftest import API_KEYS, Stack, eventually, read_topic
from tests.e2e.test_walking_skeleton import act, file, state_is, view
from tests.service.test_notifier_peers import (
    ALIMTALK_KEY,
    HOOK_SECRET,
    SENDER_KEY,
    SMS_KEY,
    SMS_SENDER,
    FakeProvider,
    FakeReceiver,
    Received,
    http_server,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

DEPARTMENT = "resource-circulation"
KAKAO_PHONE = "010-4100-0001"
REFUSED_PHONE = "010-4100-0002"
RESOLVED_STEPS = [
    "SOTONG_RECEIVED",
    "SOTONG_ASSIGNED",
    "SOTONG_HANDLER_ASSIGNED",
    "SOTONG_SITE_CHECK_NOTE",
    "SOTONG_RESOLVED_NOTE",
]


@dataclass
class Providers:
    alimtalk: FakeProvider
    sms: FakeProvider
    hooks: FakeReceiver
    notifier: ServiceProcess
    outbox: Path
    staff: Path
    """The local stack's clearly fake staff directory (010-0000-NNNN): staff are reached
    at a work mobile, never at the office landline."""

    def to_staff(self, receipt_number: str) -> list[Received]:
        """SMS accepted for a work mobile of the staff directory about this complaint (the
        tracker's views name the handler, not their work contacts)."""
        mobiles = {
            c.mobile.replace("-", "")
            for c in StaffDirectory.load(self.staff).contacts.values()
            if c.mobile
        }
        return [
            r
            for r in self.sms.accepted
            if r.body["to"] in mobiles and receipt_number in r.body["text"]
        ]


@pytest.fixture(scope="module")
def providers(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Providers]:
    root = tmp_path_factory.mktemp("notifier-providers")
    staff = localstack.local_staff_directory(root / "staff-contacts.json")
    with http_server() as alim, http_server() as sms, http_server() as hooks:
        alimtalk = FakeProvider(alim, "/v1/alimtalk", ALIMTALK_KEY, "recipient")
        alimtalk.refuse(REFUSED_PHONE, "NOT_KAKAO_USER")
        gateway = FakeProvider(sms, "/v1/sms", SMS_KEY, "to")
        receiver = FakeReceiver(hooks, f"/hooks/{DEPARTMENT}", HOOK_SECRET)
        env = stack.backends.env(database=stack.database, topic_prefix=stack.topic_prefix) | {
            "SOTONG_RETRY_INITIAL_BACKOFF_SECONDS": "0.1",
            "SOTONG_RETRY_MAX_BACKOFF_SECONDS": "1",
            "SOTONG_NOTIFIER_OUTBOX_PATH": str(root / "outbox.jsonl"),
            "SOTONG_NOTIFIER_STAFF_DIRECTORY_PATH": str(staff),
            "SOTONG_NOTIFIER_ALIMTALK_URL": alimtalk.url,
            "SOTONG_NOTIFIER_ALIMTALK_API_KEY": ALIMTALK_KEY,
            "SOTONG_NOTIFIER_ALIMTALK_SENDER_KEY": SENDER_KEY,
            "SOTONG_NOTIFIER_SMS_URL": gateway.url,
            "SOTONG_NOTIFIER_SMS_API_KEY": SMS_KEY,
            "SOTONG_NOTIFIER_SMS_SENDER": SMS_SENDER,
            "SOTONG_NOTIFIER_WEBHOOKS": json.dumps(
                {DEPARTMENT: {"url": receiver.url, "secret": HOOK_SECRET}}
            ),
            "SOTONG_NOTIFIER_HTTP_TIMEOUT_SECONDS": "3",
            "SOTONG_NOTIFIER_INTAKE_PUBLIC_URL": stack.intake,
            "SOTONG_NOTIFIER_DELIVERY_INITIAL_BACKOFF_SECONDS": "0.05",
            "SOTONG_NOTIFIER_DELIVERY_MAX_BACKOFF_SECONDS": "0.5",
        }
        stack.services["notifier"].child.stop()  # the outbox-only one: this one replaces it
        port = localstack.free_port()
        notifier = ServiceProcess(
            localstack.service_child("notifier", port, env, root / "logs"), port
        )
        notifier.child.start()
        try:
            notifier.wait_ready()
            yield Providers(alimtalk, gateway, receiver, notifier, root / "outbox.jsonl", staff)
        finally:
            notifier.child.stop()


def templates(received: list[Received]) -> list[str]:
    return [str(r.body["template_code"]) for r in received]


async def resident_outcomes(
    http: httpx.AsyncClient, stack: Stack, filed: dict[str, Any], count: int
) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]] | None:
        current = await view(http, stack, filed)
        if current is None:
            return None
        mine = [n for n in current["notifications"] if n["recipient"] == "resident"]
        return mine if len(mine) >= count else None

    found: list[dict[str, Any]] = await eventually(
        probe, what=f"{count} resident outcomes in the timeline"
    )
    return found


async def test_a_new_user_sees_one_resident_on_alimtalk_and_the_other_on_sms(
    stack: Stack, providers: Providers, http: httpx.AsyncClient
) -> None:
    kakao = await file(http, stack, vouched=True, resident={"name": "김카톡", "phone": KAKAO_PHONE})
    refused = await file(
        http, stack, vouched=True, resident={"name": "이문자", "phone": REFUSED_PHONE}
    )
    for filed in (kakao, refused):
        await state_is(http, stack, filed, "handler_assigned")
        await act(http, stack, filed["complaint_id"], "start_site_check", "내일 오전 방문")
        await state_is(http, stack, filed, "site_check")
        await act(
            http, stack, filed["complaint_id"], "resolve", "대형폐기물 스티커 안내 후 수거 완료"
        )
        await state_is(http, stack, filed, "resolved")

    kakao_seen = await resident_outcomes(http, stack, kakao, 5)
    refused_seen = await resident_outcomes(http, stack, refused, 10)

    by_alimtalk = providers.alimtalk.accepted_for(KAKAO_PHONE)
    assert templates(by_alimtalk) == RESOLVED_STEPS, "each step once, in order"
    assert all(kakao["receipt_number"] in r.body["text"] for r in by_alimtalk)
    assert providers.sms.requests_for(KAKAO_PHONE) == []

    by_sms = providers.sms.accepted_for(REFUSED_PHONE)
    assert len(by_sms) == 5, "each step once, by SMS/LMS"
    assert all(refused["receipt_number"] in r.body["text"] for r in by_sms)
    assert "처리 결과: 대형폐기물 스티커 안내 후 수거 완료" in by_sms[-1].body["text"]
    assert {r.body["type"] for r in by_sms} == {"LMS"}, "sender, receipt and link pass 90 bytes"
    assert all(r.body["text"].startswith("[인천광역시 서구] ") for r in by_sms)
    link = f"http://127.0.0.1:8005/complaints/{refused['complaint_id']}"
    assert all(r.body["text"].endswith(f"진행 상황: {link}") for r in by_sms)
    assert {r.body["subject"] for r in by_sms} == {"[인천광역시 서구] 민원 진행 안내"}
    assert len(providers.alimtalk.requests_for(REFUSED_PHONE)) == 5, "a refusal is not retried"
    assert providers.alimtalk.accepted_for(REFUSED_PHONE) == []

    assert {(n["channel"], n["outcome"], n["detail"]) for n in kakao_seen} == {
        ("alimtalk", "sent", None)
    }
    assert len(kakao_seen) == 5
    assert Counter((n["channel"], n["outcome"]) for n in refused_seen) == {
        ("alimtalk", "failed"): 5,
        ("sms", "sent"): 5,
    }
    assert {n["detail"] for n in refused_seen if n["channel"] == "sms"} == {
        "fallback from alimtalk"
    }
    assert all("NOT_KAKAO_USER" in n["detail"] for n in refused_seen if n["channel"] == "alimtalk")
    timeline = json.dumps(refused_seen)
    assert REFUSED_PHONE not in timeline
    assert REFUSED_PHONE.replace("-", "") not in timeline

    for filed in (kakao, refused):
        events = [
            e
            for e in providers.hooks.events()
            if e["subject"] == filed["complaint_id"]
            and e["type"] == "kr.go.sotong.complaint.status_changed.v1"
        ]
        # received (1) belongs to no department yet: a department hears from assignment on.
        assert [e["data"]["sequence"] for e in events] == [2, 3, 4, 5]
    assert providers.hooks.refused_signatures == 0
    for filed in (kakao, refused):
        to_handler = providers.to_staff(filed["receipt_number"])
        assert len(to_handler) == 1, "the handler hears once of a complaint given to them"
    assert not providers.outbox.exists(), "providers replace the outbox"


async def test_a_resident_with_no_phone_or_address_is_sent_nothing_and_told_why(
    stack: Stack, providers: Providers, http: httpx.AsyncClient
) -> None:
    """Not three messages "sent" to nobody: each step is skipped, with the reason, in the
    timeline the department and the resident read."""
    sms_before = len(providers.sms.requests)
    filed = await file(http, stack, vouched=True, resident={"name": "무연락"})
    await state_is(http, stack, filed, "handler_assigned")

    seen = await resident_outcomes(http, stack, filed, 3)
    assert [(n["channel"], n["outcome"], n["detail"]) for n in seen] == [
        ("none", "skipped", NO_CONTACT)
    ] * 3
    assert not providers.outbox.exists(), "nothing written to nobody"
    current = await view(http, stack, filed)
    assert current is not None
    to_handler = providers.to_staff(filed["receipt_number"])
    assert len(to_handler) == 1, "the handler is still told of the complaint, at work"
    assert current["handler"]["office_phone"].replace("-", "") not in {
        r.body["to"] for r in providers.sms.requests
    }, "never the office landline"
    new_sms = providers.sms.requests[sms_before:]
    assert all(
        filed["receipt_number"] not in r.body["text"]
        for r in new_sms
        if r.body["to"] != to_handler[0].body["to"]
    )


async def test_the_notifier_killed_mid_batch_and_restarted_sends_each_message_once(
    stack: Stack, providers: Providers, http: httpx.AsyncClient
) -> None:
    phones = [f"010-4200-{i:04d}" for i in range(4)]
    providers.alimtalk.delay = 0.4
    try:
        before = len(providers.alimtalk.accepted)
        filings = [
            await file(
                http, stack, vouched=True, resident={"phone": phone}, channel_ref=str(uuid.uuid4())
            )
            for phone in phones
        ]
        await eventually(
            lambda: len(providers.alimtalk.accepted) >= before + 3,
            what="the batch under way",
            interval=0.05,
        )
        providers.notifier.child.kill()
        mid_batch = len(providers.alimtalk.accepted) - before
        providers.notifier.child.start()
        providers.notifier.wait_ready()

        for filed, phone in zip(filings, phones, strict=True):
            await resident_outcomes(http, stack, filed, 3)

            def three(to: str = phone) -> bool:
                return len(providers.alimtalk.accepted_for(to)) >= 3

            await eventually(three, what=f"three messages to {phone}")

            def two_hooks(cid: str = filed["complaint_id"]) -> bool:
                ids = {e["id"] for e in providers.hooks.events() if e["subject"] == cid}
                return len(ids) >= 2

            await eventually(two_hooks, what="the department's two webhooks")
    finally:
        providers.alimtalk.delay = 0.0

    assert mid_batch < 4 * len(phones), "the kill came before the batch was done"
    for filed, phone in zip(filings, phones, strict=True):
        assert templates(providers.alimtalk.accepted_for(phone)) == RESOLVED_STEPS[:3]
        current = await view(http, stack, filed)
        assert current is not None
        mine = [n for n in current["notifications"] if n["recipient"] == "resident"]
        assert [(n["channel"], n["outcome"]) for n in mine] == [("alimtalk", "sent")] * 3
        hooks = Counter(
            e["id"] for e in providers.hooks.events() if e["subject"] == filed["complaint_id"]
        )
        assert len(hooks) == 2, "assigned and handler_assigned: received has no department"
        assert set(hooks.values()) == {1}

    # Every outcome published for this module's complaints, duplicates included.
    outcomes = await read_topic(stack, topics.NOTIFICATIONS, min_count=49, within=20)
    ours = {f["complaint_id"] for f in filings}
    per_delivery: dict[tuple[str, str, str], set[str]] = {}
    for o in outcomes:
        value = o["value"]
        if value["complaint_id"] in ours:
            key = (value["source_event_id"], value["recipient"], value["channel"])
            per_delivery.setdefault(key, set()).add(value["event_id"])
    assert len(per_delivery) == len(phones) * (3 + 1 + 2), "resident, handler and webhook"
    assert all(len(ids) == 1 for ids in per_delivery.values()), "one outcome id per delivery"


def a_photo(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, format="JPEG")
    return out.getvalue()


async def test_a_photo_added_by_correction_reaches_tracker_department_and_resident(
    stack: Stack, providers: Providers, http: httpx.AsyncClient
) -> None:
    """정정: 사진 추가 (issue 12) through the processes: intake attaches the upload, routing
    lists it in the correct change, the tracker shows it, the department's webhook links
    it (fetched with the department's key) and the resident is served it."""
    upload = await http.post(
        f"{stack.intake}/v1/photos", files={"file": ("later.jpg", a_photo((10, 200, 10)))}
    )
    assert upload.status_code == 201, upload.text
    photo_id = upload.json()["photo_id"]
    filed = await file(http, stack, vouched=True, channel_ref=str(uuid.uuid4()))
    await state_is(http, stack, filed, "handler_assigned")
    complaint_id = filed["complaint_id"]
    token = {"X-Tracking-Token": filed["tracking_token"]}
    assert (
        await http.get(f"{stack.intake}/v1/photos/{photo_id}", headers=token)
    ).status_code == 404  # uploaded, not yet anyone's

    corrected = await http.post(
        f"{stack.intake}/v1/complaints/{complaint_id}/resident-actions",
        json={"action": "correct", "token": filed["tracking_token"], "photos": [photo_id]},
    )
    assert corrected.status_code == 202, corrected.text

    async def shown() -> dict[str, Any] | None:
        current = await view(http, stack, filed)
        return current if current and current["timeline"][-1]["trigger"] == "correct" else None

    after = await eventually(shown, what="the photo correction in the tracker")
    correction = after["timeline"][-1]["correction"]
    assert correction["fields"] == ["photos"]
    assert [p["photo_id"] for p in correction["photos"]] == [photo_id]
    assert [p["photo_id"] for p in after["photos"]] == [photo_id]

    def hooked() -> list[dict[str, Any]] | None:
        found = [
            e
            for e in providers.hooks.events()
            if e["subject"] == complaint_id and e["data"]["trigger"] == "correct"
        ]
        return found or None

    [hook] = await eventually(hooked, what="the department's webhook of the correction")
    link = f"{stack.intake}/v1/photos/{photo_id}"
    assert hook["data"]["photos"] == [link]
    department = await http.get(link, headers={"X-Api-Key": API_KEYS[DEPARTMENT]})
    assert (department.status_code, department.headers["content-type"]) == (200, "image/jpeg")
    mine = await http.get(link, headers=token)
    assert mine.status_code == 200
    assert mine.content == department.content

    # the same photo again adds nothing; after the site check a photo is refused as any
    await act(http, stack, complaint_id, "start_site_check", "현장 방문", department=DEPARTMENT)
    await state_is(http, stack, filed, "site_check")

    def hooked_twice() -> list[dict[str, Any]] | None:
        found = [
            e
            for e in providers.hooks.events()
            if e["subject"] == complaint_id and e["data"]["trigger"] == "start_site_check"
        ]
        return found or None

    [later] = await eventually(hooked_twice, what="the site check's webhook")
    assert later["data"]["photos"] == [link]  # remembered for every later event
    second = await http.post(
        f"{stack.intake}/v1/photos", files={"file": ("late.jpg", a_photo((200, 10, 10)))}
    )
    late = await http.post(
        f"{stack.intake}/v1/complaints/{complaint_id}/resident-actions",
        json={
            "action": "correct",
            "token": filed["tracking_token"],
            "photos": [second.json()["photo_id"]],
        },
    )
    assert late.status_code == 202

    async def refused() -> list[dict[str, Any]] | None:
        current = await view(http, stack, filed)
        found = [r for r in (current or {}).get("rejections", []) if r["action"] == "correct"]
        return found or None

    [refusal] = await eventually(refused, what="the late photo refused")
    assert refusal["code"] == "correction_closed"


async def test_a_notifier_killed_mid_batch_of_webhooks_calls_again_only_those_in_flight(
    stack: Stack, providers: Providers, http: httpx.AsyncClient
) -> None:
    """A backlog of state changes is one batch; the department's receiver answers four
    webhooks and then hangs. The notifier is SIGKILLed while it waits: the four answered
    webhooks were already finished in the ledger (each as it ended), so the restarted
    notifier calls again only the ones that were hanging — the receiver sees no repeat."""
    hooks = providers.hooks
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(stack.backends.mongo_uri)
    providers.notifier.child.stop()  # a backlog builds up: the restart takes it in one go
    try:
        filings = [
            await file(
                http,
                stack,
                vouched=True,
                resident={"phone": f"010-4300-{i:04d}"},
                channel_ref=str(uuid.uuid4()),
            )
            for i in range(6)
        ]
        for filed in filings:
            await state_is(http, stack, filed, "handler_assigned")
        repeats_before = hooks.repeats
        hooks.hold(after=4)
        providers.notifier.child.start()
        providers.notifier.wait_ready()
        await eventually(
            lambda: hooks.passed >= 4 and hooks.held >= 1, what="webhooks answered and one hanging"
        )
        # each answered webhook is finished in the ledger as it ends: wait until the four are
        # (not a fixed sleep, which a loaded machine can outlast)
        ledger = mongo[stack.database][DELIVERIES]
        ours = {"complaint_id": {"$in": [f["complaint_id"] for f in filings]}}

        async def four_finished() -> bool:
            sent = {**ours, "_id": {"$regex": ":webhook$"}, "status": "sent"}
            return await ledger.count_documents(sent) >= 4

        await eventually(four_finished, what="the four answered webhooks finished")
        providers.notifier.child.kill()
        answered, hanging = hooks.passed, hooks.held
    finally:
        await mongo.close()
        hooks.let_go()
        if providers.notifier.child.process is None or (
            providers.notifier.child.process.poll() is not None
        ):
            providers.notifier.child.start()
        providers.notifier.wait_ready()

    for filed in filings:

        def two_hooks(cid: str = filed["complaint_id"]) -> bool:
            ids = {e["id"] for e in hooks.events() if e["subject"] == cid}
            return len(ids) >= 2

        await eventually(two_hooks, what="the department's two webhooks")

    assert answered == 4
    assert hanging >= 1
    assert hooks.repeats - repeats_before == 0, "no webhook answered before the kill came again"
    for filed in filings:
        ids = Counter(e["id"] for e in hooks.events() if e["subject"] == filed["complaint_id"])
        assert len(ids) == 2
        assert set(ids.values()) == {1}
