"""In-memory stand-ins for intake's collaborators, honest enough to pass the store contract."""

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from intake.contacts import CodeRecord as ContactCode
from intake.idempotency import Answer, Claim, Kept
from intake.photo_store import THUMB, StoredPhoto
from intake.photos import Processed
from intake.store import (
    MAX_BOUND_RESIDENTS,
    ChannelRef,
    FiledRecord,
    Owner,
    Refused,
    SubmissionStore,
)
from schemas import ComplaintFiled
from schemas.events import PhotoRef
from schemas.tokens import hash_token, token_matches
from services.broker import KeyedEvent


def _bson_precision(at: datetime) -> datetime:
    """MongoDB keeps milliseconds; so does the fake, so time windows cut alike."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


@dataclass
class _Row:
    record: FiledRecord
    filed_at: datetime
    bound: list[str] = field(default_factory=list)

    def owner(self) -> Owner:
        filed = self.record.filed
        filer = [filed.resident_token_hash] if filed.resident_token_hash else []
        return Owner(
            complaint_id=filed.complaint_id,
            receipt_number=filed.receipt_number,
            resident_hashes=tuple(dict.fromkeys([*filer, *self.bound])),
            phone=filed.resident.phone if filed.resident.notification_consent else None,
        )


class InMemorySubmissionStore:
    """``MongoSubmissionStore`` in a dict: the same unique keys (complaint id, receipt
    number, (channel, channel_ref) when there is a channel_ref) checked in the same order."""

    def __init__(self) -> None:
        self.rows: dict[str, _Row] = {}
        self.residents: dict[str, datetime] = {}
        self.phone_days: dict[str, tuple[int, datetime]] = {}

    async def ensure_indexes(self) -> None:
        return None

    async def find_by_channel_refs(
        self, refs: Collection[ChannelRef]
    ) -> dict[ChannelRef, FiledRecord]:
        wanted = set(refs)
        found: dict[ChannelRef, FiledRecord] = {}
        for row in self.rows.values():
            filed = row.record.filed
            if filed.channel_ref is not None and (filed.channel, filed.channel_ref) in wanted:
                found[(filed.channel.value, filed.channel_ref)] = row.record
        return found

    async def find_by_submissions(self, submission_ids: Collection[str]) -> dict[str, FiledRecord]:
        wanted = set(submission_ids)
        return {
            r.record.submission_id: r.record
            for r in self.rows.values()
            if r.record.submission_id is not None and r.record.submission_id in wanted
        }

    async def insert_many(self, records: Sequence[FiledRecord]) -> list[FiledRecord | Refused]:
        outcome: list[FiledRecord | Refused] = []
        for record in records:
            filed = record.filed
            if filed.complaint_id in self.rows:
                raise KeyError(f"duplicate _id {filed.complaint_id}")
            taken_ref = filed.channel_ref is not None and any(
                (r.record.filed.channel, r.record.filed.channel_ref)
                == (filed.channel, filed.channel_ref)
                for r in self.rows.values()
            )
            taken_submission = record.submission_id is not None and any(
                r.record.submission_id == record.submission_id for r in self.rows.values()
            )
            if taken_ref:
                outcome.append(Refused.CHANNEL_REF)
            elif taken_submission:
                outcome.append(Refused.SUBMISSION)
            elif any(
                r.record.filed.receipt_number == filed.receipt_number for r in self.rows.values()
            ):
                outcome.append(Refused.RECEIPT)
            else:
                stored = replace(record, published=False)
                self.rows[filed.complaint_id] = _Row(
                    stored.stored(), _bson_precision(filed.occurred_at)
                )
                outcome.append(stored)
        return outcome

    async def known_residents(self, resident_tokens: Collection[str]) -> set[str]:
        return {t for t in resident_tokens if hash_token(t) in self.residents}

    async def remember_residents(self, resident_tokens: Collection[str], at: datetime) -> None:
        for token in resident_tokens:
            self.residents.setdefault(hash_token(token), _bson_precision(at))

    async def count_phones(self, added: Mapping[str, tuple[int, datetime]]) -> dict[str, int]:
        for key, (n, expires_at) in added.items():
            counted, expires = self.phone_days.get(key, (0, _bson_precision(expires_at)))
            self.phone_days[key] = (counted + n, expires)
        return {key: self.phone_days[key][0] for key in added}

    async def token_matches(self, complaint_id: str, token: str) -> bool:
        row = self.rows.get(complaint_id)
        if row is None:
            return False
        filed = row.record.filed
        hashes = [filed.tracking_token_hash, filed.resident_token_hash, *row.bound]
        return any(token_matches(token, h) for h in hashes)

    async def owner_by_receipt(self, receipt_number: str) -> Owner | None:
        return next(
            (
                r.owner()
                for r in self.rows.values()
                if r.record.filed.receipt_number == receipt_number
            ),
            None,
        )

    async def owned_by(self, resident_hashes: Collection[str], *, limit: int) -> list[Owner]:
        wanted = set(resident_hashes)
        rows = [r for r in self.rows.values() if wanted & set(r.owner().resident_hashes)]
        rows.sort(key=lambda r: r.filed_at, reverse=True)
        return [r.owner() for r in rows[:limit]]

    async def bind_resident(self, complaint_ids: Collection[str], resident_token_hash: str) -> None:
        for complaint_id in complaint_ids:
            row = self.rows.get(complaint_id)
            if row is not None and resident_token_hash not in row.bound:
                row.bound = [*row.bound, resident_token_hash][-MAX_BOUND_RESIDENTS:]

    async def submission_of(self, complaint_id: str) -> str | None:
        row = self.rows.get(complaint_id)
        return None if row is None else row.record.submission_id

    async def photos_of(self, complaint_ids: Collection[str]) -> dict[str, list[PhotoRef]]:
        return {
            c: list(row.record.filed.photos)
            for c in complaint_ids
            if (row := self.rows.get(c)) is not None and row.record.filed.photos
        }

    async def mark_published(self, complaint_id: str) -> None:
        row = self.rows.get(complaint_id)
        if row is not None:
            row.record = replace(row.record, published=True)

    async def mark_published_many(self, complaint_ids: Collection[str]) -> None:
        for complaint_id in complaint_ids:
            await self.mark_published(complaint_id)

    async def unpublished(self, *, older_than: datetime, limit: int = 500) -> list[FiledRecord]:
        due = [r for r in self.rows.values() if not r.record.published and r.filed_at < older_than]
        return [r.record for r in sorted(due, key=lambda r: r.filed_at)[:limit]]

    async def published_since(self, since: datetime) -> AsyncIterator[FiledRecord]:
        kept = [r for r in self.rows.values() if r.record.published and r.filed_at >= since]
        for row in sorted(kept, key=lambda r: r.filed_at):
            yield row.record


async def insert(
    store: SubmissionStore, filed: ComplaintFiled, tracking_token: str, resident_token: str
) -> FiledRecord | Refused:
    """Seed one complaint through the bulk insert, as a test's precondition."""
    [outcome] = await store.insert_many(
        [FiledRecord(filed, tracking_token, resident_token, published=False)]
    )
    return outcome


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


class InMemoryIdempotencyStore:
    """``MongoIdempotencyStore`` in a dict (expiry is checked on read: no TTL monitor)."""

    def __init__(self) -> None:
        self.kept: dict[str, Kept] = {}

    async def ensure_indexes(self) -> None:
        return None

    async def claim_many(self, claims: Sequence[Claim]) -> list[bool]:
        inserted = []
        for claim in claims:
            new = claim.key_id not in self.kept
            if new:
                self.kept[claim.key_id] = Kept(
                    claim.key_id,
                    claim.fingerprint,
                    _bson_precision(claim.at),
                    _bson_precision(claim.expires_at),
                )
            inserted.append(new)
        return inserted

    async def find_many(self, key_ids: Collection[str]) -> dict[str, Kept]:
        return {k: self.kept[k] for k in key_ids if k in self.kept}

    async def take_over(self, key_id: str, *, started_before: datetime, at: datetime) -> bool:
        kept = self.kept.get(key_id)
        if kept is None or kept.sealed is not None or kept.started_at >= started_before:
            return False
        self.kept[key_id] = replace(kept, started_at=_bson_precision(at))
        return True

    async def forget_expired(self, key_id: str, *, now: datetime) -> bool:
        kept = self.kept.get(key_id)
        if kept is None or kept.expires_at > now:
            return False
        del self.kept[key_id]
        return True

    async def answer_many(self, answers: Sequence[Answer]) -> None:
        for answer in answers:
            kept = self.kept.get(answer.key_id)
            if kept is not None:
                self.kept[answer.key_id] = replace(
                    kept, status=answer.status, headers=answer.headers, sealed=answer.sealed
                )

    async def release(self, key_id: str) -> None:
        self.kept.pop(key_id, None)


class InMemoryPhotoStore:
    """``MongoPhotoStore`` in dicts."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str, str | None]] = {}
        self.uploaded: dict[str, datetime] = {}

    async def sweep(self, uploaded_before: datetime, *, at_most: int) -> int:
        old = [
            p
            for p, at in self.uploaded.items()
            if at < uploaded_before and p in self.files and self.files[p][2] is None
        ][:at_most]
        for photo_id in old:
            del self.files[photo_id], self.files[photo_id + THUMB], self.uploaded[photo_id]
        return len(old)

    async def ensure_indexes(self) -> None:
        return None

    async def save(self, photo_id: str, photo: Processed, at: datetime) -> PhotoRef:
        self.files[photo_id + THUMB] = (photo.thumbnail, "image/jpeg", None)
        self.files[photo_id] = (photo.data, photo.media_type.value, None)
        self.uploaded[photo_id] = at
        return PhotoRef(photo_id=photo_id, content_type=photo.media_type, size=len(photo.data))

    async def find(self, photo_ids: Collection[str]) -> dict[str, StoredPhoto]:
        found = {}
        for photo_id in photo_ids:
            if photo_id in self.files:
                data, media_type, owner = self.files[photo_id]
                ref = PhotoRef(photo_id=photo_id, content_type=media_type, size=len(data))
                found[photo_id] = StoredPhoto(ref, owner)
        return found

    async def attach(self, photo_id: str, submission_id: str, *, replacing: str | None) -> bool:
        kept = self.files.get(photo_id)
        if kept is None or kept[2] != replacing:
            return False
        self.files[photo_id] = (kept[0], kept[1], submission_id)
        return True

    async def attached_to(self, submission_id: str) -> list[str]:
        return [
            p
            for p, (_, _, owner) in self.files.items()
            if owner == submission_id and THUMB not in p
        ]

    async def detach(self, photo_id: str, submission_id: str, at: datetime) -> bool:
        kept = self.files.get(photo_id)
        if kept is None or kept[2] != submission_id:
            return False
        self.files[photo_id] = (kept[0], kept[1], None)
        self.uploaded[photo_id] = at
        return True

    async def read(self, photo_id: str, *, thumbnail: bool) -> tuple[bytes, str] | None:
        kept = self.files.get(photo_id + THUMB if thumbnail else photo_id)
        return None if kept is None else (kept[0], kept[1])


class InMemoryContactCodes:
    """``MongoContactCodes`` in a dict: insert-once by complaint id and compare-and-set on
    the version, as the contract test holds both to."""

    def __init__(self) -> None:
        self.records: dict[str, ContactCode] = {}

    async def ensure_indexes(self) -> None:
        return None

    async def create(self, record: ContactCode) -> bool:
        if record.complaint_id in self.records:
            return False
        self.records[record.complaint_id] = _code_stored(record)
        return True

    async def get(self, complaint_id: str) -> ContactCode | None:
        return self.records.get(complaint_id)

    async def update(self, record: ContactCode) -> bool:
        stored = self.records.get(record.complaint_id)
        if stored is None or stored.version != record.version:
            return False
        self.records[record.complaint_id] = _code_stored(
            replace(record, version=record.version + 1)
        )
        return True


def _code_stored(record: ContactCode) -> ContactCode:
    at = _bson_precision
    return replace(
        record,
        expires_at=at(record.expires_at),
        purge_at=at(record.purge_at),
        resends=tuple(at(t) for t in record.resends),
        confirmed_at=at(record.confirmed_at) if record.confirmed_at is not None else None,
    )


class InMemoryConfirmedPhones:
    """``MongoConfirmedPhones`` in a dict: key → until when it counts."""

    def __init__(self) -> None:
        self.until: dict[str, datetime] = {}

    async def ensure_indexes(self) -> None:
        return None

    async def remember(self, keys: Collection[str], until: datetime) -> None:
        for key in keys:
            self.until[key] = _bson_precision(until)

    async def remembered(self, key: str, now: datetime) -> bool:
        return key in self.until and self.until[key] > now
