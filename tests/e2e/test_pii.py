"""Personal data a resident writes into a complaint stays in their own view: one complaint
holding a 주민등록번호, a phone number and an e-mail address, filed over HTTP on the real
stack, reaches the department's webhook, the lifecycle topic, staff search and the
dead-letter topic masked, while the resident reads back what they wrote (the RRN masked
on arrival)."""

import base64
import json
import uuid

import httpx
import pytest
from pymongo import AsyncMongoClient

from schemas import topics
from schemas.pii import RRN_MASK
from services.archive import COLLECTION
from services.mongo import Document
from tests.e2e.conftest import Stack, eventually, produce, read_topic
from tests.e2e.test_notifier_channels import Providers, providers  # noqa: F401 - fixture
from tests.e2e.test_tracker_read_side import STAFF_KEY, staff_side  # noqa: F401 - fixture
from tests.e2e.test_walking_skeleton import act, file, state_is, view

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PHONE, EMAIL, RRN = "010-7300-4411", "canary.pii@example.kr", "900101-1234568"
ACCOUNT = "9001011234567"  # an RRN's shape, failing its checksum: stored, masked on the way out
NOTE_PHONE = "010-7300-9922"
PERSONAL = ("7300-4411", "73004411", "canary.pii", "1234568", "1234567", "7300-9922")


def assert_nothing_personal(text: str) -> None:
    for personal in PERSONAL:
        assert personal not in text, (personal, text[:500])


async def test_a_complaint_with_an_rrn_phone_and_email_leaves_the_residents_view_masked(
    stack: Stack,
    providers: Providers,  # noqa: F811
    staff_side: httpx.AsyncClient,  # noqa: F811
    http: httpx.AsyncClient,
) -> None:
    body = (
        f"소파 수거 부탁드립니다. 연락처 {PHONE}, 메일 {EMAIL}, 주민번호 {RRN}, 환불 계좌 {ACCOUNT}"
    )
    filed = await file(http, stack, vouched=True, title=f"소파 수거 ({PHONE})", body=body)
    await state_is(http, stack, filed, "handler_assigned")
    await act(http, stack, filed["complaint_id"], "start_site_check", f"민원인 {NOTE_PHONE} 통화")
    await state_is(http, stack, filed, "site_check")

    # The resident's own view: what they wrote, only the RRN masked (on arrival).
    own = await view(http, stack, filed)
    assert own is not None
    assert own["title"] == f"소파 수거 ({PHONE})"

    # The department's webhook: every body for this complaint, the note masked.
    def site_check() -> list[bytes]:
        mine = [r for r in providers.hooks.accepted if r.body["subject"] == filed["complaint_id"]]
        done = any(r.body["data"]["to_state"] == "site_check" for r in mine)
        return [r.raw for r in mine] if done else []

    raws: list[bytes] = await eventually(site_check, what="the site-check webhook")
    for raw in raws:
        assert_nothing_personal(raw.decode())
    [note] = [
        json.loads(raw)["data"]["note"]
        for raw in raws
        if json.loads(raw)["data"]["to_state"] == "site_check"
    ]
    assert note == "민원인 010-****-9922 통화"

    # The lifecycle topic departments subscribe to carries the note masked too.
    lifecycle = await read_topic(stack, topics.LIFECYCLE, key=filed["complaint_id"], min_count=4)
    assert_nothing_personal(json.dumps([m["value"] for m in lifecycle], ensure_ascii=False))

    # Staff search: title and excerpt masked, the complaint found by its words.
    found = await staff_side.get(
        "/v1/search", params={"q": "소파 수거"}, headers={"X-Api-Key": STAFF_KEY}
    )
    assert found.status_code == 200, found.text
    [hit] = [h for h in found.json()["items"] if h["complaint_id"] == filed["complaint_id"]]
    assert hit["title"] == "소파 수거 (010-****-4411)"
    assert hit["excerpt"] == (
        "소파 수거 부탁드립니다. 연락처 010-****-4411, 메일 c***@example.kr, "
        f"주민번호 {RRN_MASK}, 환불 계좌 {RRN_MASK}"
    )
    assert_nothing_personal(found.text)


async def test_a_dead_letter_carries_the_value_masked_and_the_archive_the_original(
    stack: Stack,
) -> None:
    key = f"pii-{uuid.uuid4()}"
    poison = json.dumps(
        {"channel": "web", "title": f"연락 {PHONE}", "resident": {"email": EMAIL}}
    ).encode()  # no body: permanently invalid
    await produce(stack, topics.SUBMISSIONS, poison, key)

    [letter] = [
        m["value"] for m in await read_topic(stack, topics.DEAD_LETTER, key=key, min_count=1)
    ]
    carried = base64.b64decode(letter["original_value_b64"]).decode()
    assert_nothing_personal(carried)
    assert "010-****-4411" in carried
    assert letter["original_masked"] is True
    assert "body" in letter["reason"]
    client: AsyncMongoClient[Document] = AsyncMongoClient(stack.backends.mongo_uri)
    try:
        kept = await client[stack.database][COLLECTION].find_one({"_id": letter["event_id"]})
    finally:
        await client.close()
    assert kept is not None
    assert bytes(kept["value"]) == poison, "the original, for a replay"
