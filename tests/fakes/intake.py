"""In-memory stand-ins for intake's collaborators, honest enough to pass the store contract."""

import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import datetime

from intake.store import FiledRecord, ReceiptCollision
from schemas import ComplaintFiled
from schemas.tokens import hash_token
from services.broker import KeyedEvent


def _bson_precision(at: datetime) -> datetime:
    """MongoDB keeps milliseconds; so does the fake, so time windows cut alike."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


@dataclass
class _Row:
    record: FiledRecord
    filed_at: datetime


class InMemorySubmissionStore:
    """``MongoSubmissionStore`` in a dict: the same unique keys (complaint id, receipt
    number, (channel, channel_ref) when there is a channel_ref) checked in the same order."""

    def __init__(self) -> None:
        self.rows: dict[str, _Row] = {}
        self.residents: dict[str, datetime] = {}

    async def ensure_indexes(self) -> None:
        return None

    async def find_by_channel_ref(self, channel: str, channel_ref: str) -> FiledRecord | None:
        for row in self.rows.values():
            filed = row.record.filed
            if filed.channel == channel and filed.channel_ref == channel_ref:
                return row.record
        return None

    async def insert(
        self, filed: ComplaintFiled, tracking_token: str, resident_token: str
    ) -> FiledRecord | None:
        if filed.complaint_id in self.rows:
            return None
        if filed.channel_ref is not None and await self.find_by_channel_ref(
            filed.channel, filed.channel_ref
        ):
            return None
        if any(r.record.filed.receipt_number == filed.receipt_number for r in self.rows.values()):
            raise ReceiptCollision
        record = FiledRecord(
            filed=filed,
            tracking_token=tracking_token,
            resident_token=resident_token,
            published=False,
        )
        self.rows[filed.complaint_id] = _Row(record, _bson_precision(filed.occurred_at))
        return record

    async def known_resident(self, resident_token: str) -> bool:
        return hash_token(resident_token) in self.residents

    async def remember_resident(self, resident_token: str, at: datetime) -> None:
        self.residents.setdefault(hash_token(resident_token), _bson_precision(at))

    async def token_matches(self, complaint_id: str, token: str) -> bool:
        row = self.rows.get(complaint_id)
        if row is None:
            return False
        return hmac.compare_digest(row.record.tracking_token.encode(), token.encode())

    async def mark_published(self, complaint_id: str) -> None:
        row = self.rows.get(complaint_id)
        if row is not None:
            row.record = replace(row.record, published=True)

    async def unpublished(self, *, older_than: datetime, limit: int = 500) -> list[FiledRecord]:
        due = [r for r in self.rows.values() if not r.record.published and r.filed_at < older_than]
        return [r.record for r in sorted(due, key=lambda r: r.filed_at)[:limit]]

    async def published_since(self, since: datetime) -> AsyncIterator[FiledRecord]:
        kept = [r for r in self.rows.values() if r.record.published and r.filed_at >= since]
        for row in sorted(kept, key=lambda r: r.filed_at):
            yield row.record


@dataclass(frozen=True)
class Sent:
    topic: str
    event: KeyedEvent
    correlation_id: str | None


@dataclass
class RecordingPublish:
    """A ``services.runtime.Publish`` that keeps what it was asked to send, in order."""

    sent: list[Sent] = field(default_factory=list)

    async def __call__(
        self, topic: str, event: KeyedEvent, correlation_id: str | None = None
    ) -> None:
        self.sent.append(Sent(topic, event, correlation_id))

    def on(self, topic: str) -> list[KeyedEvent]:
        return [s.event for s in self.sent if s.topic == topic]
