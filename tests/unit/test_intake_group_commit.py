"""Group commit at the front door: concurrent filings share one bulk insert and one round
of publishes, and every caller still hears exactly what a lone filing would."""

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from intake.handlers import Intake, UnknownResidentToken
from intake.store import RELAY_GRACE, FiledRecord, Refused
from schemas import ComplaintSubmitted, topics
from services.broker import KeyedEvent
from tests.fakes.intake import InMemorySubmissionStore, RecordingPublish

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)


def submission(ref: str | None, **fields: object) -> ComplaintSubmitted:
    return ComplaintSubmitted.model_validate(
        {"channel": "web", "channel_ref": ref, "body": "가로등이 꺼져 있어요", **fields}
    )


class CountingStore(InMemorySubmissionStore):
    """Counts bulk inserts and can take a receipt number the first time it is drawn."""

    def __init__(self, taken_receipts: int = 0) -> None:
        super().__init__()
        self.inserts: list[int] = []
        self.taken_receipts = taken_receipts

    async def insert_many(self, records: Sequence[FiledRecord]) -> list[FiledRecord | Refused]:
        self.inserts.append(len(records))
        if self.taken_receipts:
            self.taken_receipts -= 1
            _, *rest = records
            return [Refused.RECEIPT, *await super().insert_many(rest)]
        return await super().insert_many(records)


def intake_with(store: InMemorySubmissionStore, publish: object = None) -> Intake:
    return Intake(
        store=store,
        publish=publish or RecordingPublish(),  # type: ignore[arg-type]
        clock=lambda: NOW,
        registry=CollectorRegistry(),
    )


async def test_concurrent_filings_share_one_insert_and_each_gets_its_own_answer() -> None:
    store = CountingStore()
    publish = RecordingPublish()
    intake = intake_with(store, publish)
    results = await asyncio.gather(*(intake.accept(submission(f"w-{i}")) for i in range(20)))
    assert store.inserts == [20]  # all arrived before the first flush began
    assert [dup for _, dup in results] == [False] * 20
    ids = [record.filed.complaint_id for record, _ in results]
    assert len(set(ids)) == 20
    assert [e.complaint_id for e in publish.on(topics.FILED)] == ids
    assert {r.filed.channel_ref for r, _ in results} == {f"w-{i}" for i in range(20)}
    assert await store.unpublished(older_than=NOW + timedelta(days=1)) == []


async def test_the_same_channel_ref_twice_in_one_batch_files_once() -> None:
    store = CountingStore()
    publish = RecordingPublish()
    intake = intake_with(store, publish)
    first, again, other = await asyncio.gather(
        intake.accept(submission("same")),
        intake.accept(submission("same", body="다시 보냅니다")),
        intake.accept(submission("other")),
    )
    assert first[1] is False
    assert again == (first[0], True)
    assert other[1] is False
    assert len(publish.on(topics.FILED)) == 2
    batch = await asyncio.gather(
        intake.accept(submission("x")), intake.accept(submission("y")),
        intake.accept(submission("x")),
    )  # fmt: skip
    assert batch[2] == (batch[0][0], True)
    assert len(store.rows) == 4


async def test_an_unknown_resident_token_is_refused_alone_in_its_batch() -> None:
    store = CountingStore()
    intake = intake_with(store)
    results = await asyncio.gather(
        intake.accept(submission("a")),
        intake.accept(submission("b", resident_token="never-issued-token-0123456789")),
        intake.accept(submission("c")),
        return_exceptions=True,
    )
    assert isinstance(results[1], UnknownResidentToken)
    assert "resident_token" in str(results[1])
    assert not isinstance(results[0], BaseException)
    assert not isinstance(results[2], BaseException)
    assert sorted(r.record.filed.channel_ref or "" for r in store.rows.values()) == ["a", "c"]


async def test_a_taken_receipt_number_is_redrawn_for_that_complaint_only() -> None:
    store = CountingStore(taken_receipts=1)
    intake = intake_with(store)
    record, duplicate = await intake.accept(submission("r-1"))
    assert duplicate is False
    assert store.inserts == [1, 1]
    assert list(store.rows) == [record.filed.complaint_id]


async def test_a_filing_the_broker_cannot_take_is_still_filed_and_left_to_the_relay() -> None:
    store = CountingStore()
    down = True
    sent: list[KeyedEvent] = []

    async def publish(topic: str, event: KeyedEvent, correlation_id: str | None = None) -> None:
        if down:
            raise ConnectionError("broker unreachable")
        sent.append(event)

    intake = intake_with(store, publish)
    record, duplicate = await intake.accept(submission("b-1"))
    assert duplicate is False
    assert sent == []
    [left] = await store.unpublished(older_than=NOW + RELAY_GRACE * 2)
    assert left.filed.complaint_id == record.filed.complaint_id

    down = False
    again, duplicate = await intake.accept(submission("b-1"))  # the channel's retry
    assert (again.filed.complaint_id, duplicate) == (record.filed.complaint_id, True)
    assert [e.event_id for e in sent] == [record.filed.event_id]
    assert await store.unpublished(older_than=NOW + RELAY_GRACE * 2) == []


async def test_a_store_failure_fails_the_callers_of_that_batch() -> None:
    class DownStore(InMemorySubmissionStore):
        async def insert_many(self, records: Sequence[FiledRecord]) -> list[FiledRecord | Refused]:
            raise ConnectionError("database unreachable")

    intake = intake_with(DownStore())
    with pytest.raises(ConnectionError):
        await intake.accept(submission("d-1"))


async def test_a_redelivered_kafka_submission_without_a_channel_ref_files_once() -> None:
    """A crash between the insert and the offset commit delivers the same submission
    again: its event id finds the complaint, in a later batch or the same one."""
    store = CountingStore()
    publish = RecordingPublish()
    intake = intake_with(store, publish)
    sent = submission(None)

    def answer(result: tuple[FiledRecord, bool]) -> tuple[str, bool]:
        return result[0].filed.complaint_id, result[1]

    first, duplicate = await intake.accept(sent)
    assert duplicate is False
    cid = first.filed.complaint_id
    assert answer(await intake.accept(sent)) == (cid, True)
    twice = await asyncio.gather(intake.accept(submission(None)), intake.accept(sent))
    assert answer(twice[1]) == (cid, True)
    same = submission(None)
    together = await asyncio.gather(intake.accept(same), intake.accept(same))
    assert answer(together[1]) == (together[0][0].filed.complaint_id, True)
    assert len(store.rows) == 3
    assert len(publish.on(topics.FILED)) == 3
