"""``notifier_deliveries``: the ledger, one document per (event, recipient, channel)."""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from pymongo import ASCENDING, IndexModel, InsertOne, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from notifier.deferral import SOURCE
from notifier.ledger import (
    Claim,
    DeliveryRecord,
    DeliveryStatus,
    Finish,
    Mark,
    Stuck,
    new_record,
)
from notifier.mongo.common import only_duplicates, optional_str
from services.mongo import Document, find_in

DELIVERIES = "notifier_deliveries"


class MongoLedger:
    """The ledger in MongoDB: a claim is an insert only one attempt can win."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.deliveries: AsyncCollection[Document] = db[DELIVERIES]

    async def ensure_ledger_indexes(self) -> None:
        await self.deliveries.create_indexes(
            [
                IndexModel([("complaint_id", ASCENDING)], name="by_complaint"),
                IndexModel([("status", ASCENDING), ("claimed_at", ASCENDING)], name="by_status"),
                # A claim resumed and a delivery finished match {_id, status: sending};
                # SecantusDB's planner scans the collection for that unless an index has both.
                IndexModel([("_id", ASCENDING), ("status", ASCENDING)], name="by_id_and_status"),
                # The sweep's re-queue matches {_id, status, claimed_at[, retry_at]}: only an
                # index whose leading fields are exactly a filter's is planned.
                IndexModel(
                    [
                        ("_id", ASCENDING),
                        ("status", ASCENDING),
                        ("claimed_at", ASCENDING),
                        ("retry_at", ASCENDING),
                    ],
                    name="by_id_status_and_times",
                ),
                # The sweep's second read: deliveries waiting on the retry topic too long.
                IndexModel(
                    [("status", ASCENDING), ("retry_at", ASCENDING)], name="by_status_and_retry"
                ),
            ]
        )

    async def claim(self, claim: Claim, *, now: datetime) -> DeliveryRecord:
        """Claim a delivery, or return the claim an earlier attempt made (one more attempt
        counted if it never finished)."""
        doc = _claim_doc(claim, now)
        try:
            await self.deliveries.insert_one(doc)
        except DuplicateKeyError:
            pass
        else:
            return _record(doc, fresh=True)
        existing = await self.deliveries.find_one_and_update(
            {"_id": claim.delivery_id, "status": DeliveryStatus.SENDING.value},
            {"$inc": {"attempts": 1}, "$set": {"claimed_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        if existing is None:
            existing = await self.deliveries.find_one({"_id": claim.delivery_id})
        assert existing is not None, "duplicate key without a document"
        return _record(existing, fresh=False)

    async def finish(
        self,
        delivery_id: str,
        status: DeliveryStatus,
        *,
        now: datetime,
        detail: str | None = None,
        retries: int = 0,
        final: bool = True,
        retryable: bool = False,
    ) -> DeliveryRecord:
        """Record how a claimed delivery ended; only a claim still sending can end.
        ``retries`` are the extra tries this attempt made, added to ``attempts``."""
        assert status is not DeliveryStatus.SENDING, "finish with an outcome"
        doc = await self.deliveries.find_one_and_update(
            {"_id": delivery_id, "status": DeliveryStatus.SENDING.value},
            {
                "$set": _finish_fields(
                    Finish(
                        delivery_id=delivery_id,
                        status=status,
                        at=now,
                        detail=detail,
                        final=final,
                        retryable=retryable,
                    ),
                ),
                "$inc": {"attempts": retries},
            },
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            doc = await self.deliveries.find_one({"_id": delivery_id})
        assert doc is not None, f"finish without a claim for {delivery_id}"
        return _record(doc, fresh=False)

    async def mark_published(self, delivery_id: str) -> None:
        await self.deliveries.update_one(
            {"_id": delivery_id}, {"$set": {"outcome_published": True}}
        )

    async def mark_dead_lettered(self, delivery_id: str) -> None:
        await self.deliveries.update_one({"_id": delivery_id}, {"$set": {"dead_lettered": True}})

    async def delivery(self, delivery_id: str) -> DeliveryRecord | None:
        doc = await self.deliveries.find_one({"_id": delivery_id})
        return None if doc is None else _record(doc, fresh=False)

    async def records(self, delivery_ids: Collection[str]) -> dict[str, DeliveryRecord]:
        if not delivery_ids:
            return {}
        found = await find_in(self.deliveries, "_id", delivery_ids)
        return {str(doc["_id"]): _record(doc, fresh=False) for doc in found}

    async def claim_many(
        self, claims: Sequence[Claim], *, known: Mapping[str, DeliveryRecord], now: datetime
    ) -> list[DeliveryRecord]:
        requests: list[InsertOne[Document] | UpdateOne] = []
        written: list[str] = []
        resumed: list[str] = []
        for claim in claims:
            record = known.get(claim.delivery_id)
            if record is None:
                written.append(claim.delivery_id)
                requests.append(InsertOne(_claim_doc(claim, now)))
            elif record.status in (DeliveryStatus.SENDING, DeliveryStatus.RETRYING):
                resumed.append(claim.delivery_id)
                written.append(claim.delivery_id)
                requests.append(
                    UpdateOne(
                        {"_id": claim.delivery_id, "status": record.status.value},
                        {
                            "$inc": {"attempts": 1},
                            "$set": {"claimed_at": now, "status": DeliveryStatus.SENDING.value},
                        },
                    )
                )
        lost: set[str] = set()
        matched = len(resumed)
        if requests:
            try:
                result = await self.deliveries.bulk_write(requests, ordered=False)
                matched = result.matched_count
            except BulkWriteError as exc:
                only_duplicates(exc)
                lost = {written[e["index"]] for e in exc.details["writeErrors"]}
                matched = int(exc.details.get("nMatched", 0))
        reread = lost | (set(resumed) if matched < len(resumed) else set())
        current = await self.records(reread) if reread else {}
        records: list[DeliveryRecord] = []
        for claim in claims:
            did = claim.delivery_id
            if did in current:
                records.append(current[did])
            elif did in known:
                record = known[did]
                if record.status in (DeliveryStatus.SENDING, DeliveryStatus.RETRYING):
                    record = replace(
                        record,
                        status=DeliveryStatus.SENDING,
                        attempts=record.attempts + 1,
                        fresh=False,
                    )
                records.append(record)
            else:
                records.append(new_record(claim))
        return records

    async def settle(
        self, finishes: Sequence[Finish], marks: Sequence[Mark], *, now: datetime
    ) -> None:
        requests: list[UpdateOne] = [
            UpdateOne(
                {"_id": f.delivery_id, "status": DeliveryStatus.SENDING.value},
                {"$set": _finish_fields(f), "$inc": _finish_counts(f)},
            )
            for f in finishes
        ]
        for mark in marks:
            fields: Document = {}
            if mark.published:
                fields["outcome_published"] = True
            if mark.dead_lettered:
                fields["dead_lettered"] = True
            if fields:
                requests.append(UpdateOne({"_id": mark.delivery_id}, {"$set": fields}))
        if requests:
            await self.deliveries.bulk_write(requests, ordered=False)

    async def forget_failed(self, source_event_id: str) -> int:
        # An operator's replay (sotong deadletter), not the hot path: no index of its own.
        result = await self.deliveries.delete_many(
            {"source_event_id": source_event_id, "status": DeliveryStatus.FAILED.value}
        )
        return result.deleted_count

    async def stuck(self, before: datetime, *, limit: int = 200) -> list[Stuck]:
        found: list[Stuck] = []
        for status, since in (
            (DeliveryStatus.SENDING, "claimed_at"),
            (DeliveryStatus.RETRYING, "retry_at"),
        ):
            # Both filters name exactly the fields of one index (by_status,
            # by_status_and_retry): SecantusDB plans an index only then.
            cursor = self.deliveries.find(
                {"status": status.value, since: {"$lt": before}},
                sort=[("status", ASCENDING), (since, ASCENDING)],
                limit=limit,
            )
            async for doc in cursor:
                claimed_at = doc.get("claimed_at")
                if doc.get("source") is None or not isinstance(claimed_at, datetime):
                    continue  # claimed before claims kept their event: nothing to re-queue
                found.append(
                    Stuck(
                        record=_record(doc, fresh=False),
                        source=SOURCE.validate_python(doc["source"]),
                        correlation_id=optional_str(doc.get("correlation_id")),
                        claimed_at=claimed_at,
                    )
                )
        return found[:limit]

    async def requeue_many(self, stuck: Sequence[Stuck], *, now: datetime) -> set[str]:
        if not stuck:
            return set()
        marked: set[str] = set()
        for s in stuck:
            match: Document = {
                "_id": s.record.delivery_id,
                "status": s.record.status.value,
                "claimed_at": s.claimed_at,
            }
            if s.record.status is DeliveryStatus.RETRYING:
                match["retry_at"] = s.record.retry_at
            result = await self.deliveries.update_one(
                match, {"$set": {"status": DeliveryStatus.RETRYING.value, "retry_at": now}}
            )
            if result.modified_count:
                marked.add(s.record.delivery_id)
        return marked


def _finish_counts(finish: Finish) -> Document:
    counts: Document = {"attempts": finish.retries}
    if finish.status is DeliveryStatus.RETRYING:
        counts["retries"] = 1
    return counts


def _claim_doc(claim: Claim, now: datetime) -> Document:
    return {
        "_id": claim.delivery_id,
        "complaint_id": claim.complaint_id,
        "source_event_id": claim.source_event_id,
        "recipient": claim.recipient,
        "channel": claim.channel,
        "template_code": claim.template_code,
        "status": DeliveryStatus.SENDING.value,
        "attempts": 1,
        "claimed_at": now,
        "outcome_published": False,
        "fallback_from": claim.fallback_from,
        "source": claim.source.model_dump(mode="json") if claim.source is not None else None,
        "correlation_id": claim.correlation_id,
    }


def _finish_fields(finish: Finish) -> Document:
    assert finish.status is not DeliveryStatus.SENDING, "finish with an outcome"
    fields: Document = {
        "status": finish.status.value,
        "finished_at": finish.at,
        "detail": finish.detail,
        "final": finish.final,
        "retryable": finish.retryable,
    }
    if finish.published:
        fields["outcome_published"] = True
    if finish.dead_lettered:
        fields["dead_lettered"] = True
    if finish.status is DeliveryStatus.RETRYING:
        fields["retry_at"] = finish.retry_at
    return fields


def _record(doc: Document, *, fresh: bool) -> DeliveryRecord:
    finished_at = doc.get("finished_at")
    attempts = doc.get("attempts", 1)
    return DeliveryRecord(
        delivery_id=str(doc["_id"]),
        complaint_id=str(doc["complaint_id"]),
        source_event_id=str(doc["source_event_id"]),
        recipient=str(doc["recipient"]),
        channel=str(doc["channel"]),
        template_code=str(doc["template_code"]),
        status=DeliveryStatus(str(doc["status"])),
        attempts=attempts if isinstance(attempts, int) else 1,
        fresh=fresh,
        detail=optional_str(doc.get("detail")),
        finished_at=finished_at if isinstance(finished_at, datetime) else None,
        outcome_published=bool(doc.get("outcome_published", False)),
        fallback_from=optional_str(doc.get("fallback_from")),
        final=bool(doc.get("final", True)),
        retryable=bool(doc.get("retryable", False)),
        dead_lettered=bool(doc.get("dead_lettered", False)),
        retries=retries if isinstance(retries := doc.get("retries", 0), int) else 0,
        retry_at=retry_at if isinstance(retry_at := doc.get("retry_at"), datetime) else None,
    )
