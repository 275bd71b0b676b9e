"""``sotong deadletter list|replay``: what no consumer could process, and sending it back.

``list`` reads every letter on the dead-letter topic (from its beginning, without a
consumer group, so nothing is committed) and the whole originals kept in MongoDB for
letters too large to carry them (``dead_letter_originals``, :mod:`services.archive`),
filtered by original topic, consumer, time and reason. It prints ids, times, topics,
offsets, sizes and reasons — never a value or a header, which may carry a resident's
contact; reasons are written to be safe to log (:func:`services.errors.describe`).

``replay`` publishes each chosen letter's original value (the archived whole when the
letter carries an excerpt, checked against its SHA-256) to its original topic with its
original key and headers, plus ``sotong_replay_of``. Consumers are idempotent, so what
was processed is not processed twice; for a letter the notifier wrote (a recipient no
channel reached), the notifier's failed ledger records of that event are forgotten
first, so the replay is delivered instead of being found "already handled"; what was
sent stays sent.

Settings come from the environment (``SOTONG_KAFKA_*``, ``SOTONG_MONGO_*``), as the
services read them.
"""

import argparse
import asyncio
import base64
import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from notifier.store import MongoNotifierStore
from schemas import topics
from schemas.events import DeadLetter
from services.archive import COLLECTION as ARCHIVE
from services.archive import DeadLetterArchive
from services.mongo import Document, database, make_client
from services.settings import KafkaSettings, MongoSettings

KST = ZoneInfo("Asia/Seoul")
REPLAY_HEADER = "sotong_replay_of"


@dataclass(frozen=True)
class Filters:
    topic: str | None = None
    consumer: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    reason: str | None = None

    def keep(self, letter: DeadLetter, prefix: str) -> bool:
        if self.topic and letter.original_topic not in (self.topic, prefix + self.topic):
            return False
        if self.consumer and letter.consumer != self.consumer:
            return False
        if self.since and letter.occurred_at < self.since:
            return False
        if self.until and letter.occurred_at > self.until:
            return False
        return not (self.reason and self.reason.lower() not in letter.reason.lower())


@dataclass(frozen=True)
class Listed:
    letters: list[DeadLetter]
    archived: set[str]
    """Letter ids whose whole original is kept in MongoDB."""
    orphans: list[Document]
    """Archived originals whose letter is no longer on the topic (a broker restart)."""
    unreadable: int
    """Records on the dead-letter topic that are not a DeadLetter."""


async def read_letters(kafka: KafkaSettings) -> tuple[list[DeadLetter], int]:
    """Every letter on the dead-letter topic, oldest first per partition."""
    name = kafka.topic_prefix + topics.DEAD_LETTER
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        client_id="sotong-deadletter",
    )
    await consumer.start()
    letters: list[DeadLetter] = []
    unreadable = 0
    try:
        partitions = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
        if not partitions:
            return [], 0
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    try:
                        letters.append(DeadLetter.model_validate_json(record.value or b""))
                    except ValidationError:
                        unreadable += 1
    finally:
        await consumer.stop()
    return letters, unreadable


async def list_letters(kafka: KafkaSettings, db: AsyncDatabase[Document], f: Filters) -> Listed:
    letters, unreadable = await read_letters(kafka)
    chosen = [letter for letter in letters if f.keep(letter, kafka.topic_prefix)]
    on_topic = {letter.event_id for letter in letters}
    archived: set[str] = set()
    orphans: list[Document] = []
    async for doc in db[ARCHIVE].find({}, projection={"value": False}):
        if doc["_id"] in on_topic:
            archived.add(str(doc["_id"]))
        elif not f.topic or doc.get("topic") in (f.topic, kafka.topic_prefix + f.topic):
            orphans.append(doc)
    return Listed(chosen, archived, orphans, unreadable)


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(KST):%Y-%m-%d %H:%M:%S}"


def describe(listed: Listed, out: TextIO) -> None:
    """One line per letter: no value, no header (they may carry personal data)."""
    for letter in listed.letters:
        where = letter.original_topic
        if letter.original_partition is not None:
            where += f" p{letter.original_partition}@{letter.original_offset}"
        size = f"{letter.original_size}B" if letter.original_size is not None else "?B"
        flags = ["retryable" if letter.retryable else "permanent"]
        if letter.event_id in listed.archived:
            flags.append("archived")
        print(
            f"{letter.event_id}  {_when(letter.occurred_at)}  {letter.consumer}  {where}  "
            f"complaint={letter.complaint_id or '-'}  {size}  {','.join(flags)}  "
            f"{letter.reason[:200]}",
            file=out,
        )
    for doc in listed.orphans:
        stored = doc.get("stored_at")
        when = _when(stored) if isinstance(stored, datetime) else "?"
        print(
            f"{doc['_id']}  {when}  {doc.get('consumer')}  {doc.get('topic')} "
            f"p{doc.get('partition')}@{doc.get('offset')}  archived only: the letter is no "
            "longer on the topic (not replayable without its key)",
            file=out,
        )
    print(
        f"{len(listed.letters)} dead letter(s)"
        + (
            f", {len(listed.orphans)} archived original(s) without a letter"
            if listed.orphans
            else ""
        )
        + (f", {listed.unreadable} unreadable record(s)" if listed.unreadable else ""),
        file=out,
    )


class ReplayError(Exception):
    """A letter that cannot be replayed; the message says which and why."""


async def original_value(letter: DeadLetter, archive: DeadLetterArchive) -> bytes:
    """The bytes the failed record had: the letter's own, or the archived whole (a letter
    carries an excerpt of a large value, and personal data in it masked)."""
    if letter.original_truncated or letter.original_masked:
        value = await archive.original(letter.event_id)
        if value is None:
            raise ReplayError(
                f"{letter.event_id}: truncated or masked, and its original is not archived"
            )
    else:
        value = base64.b64decode(letter.original_value_b64)
    if letter.original_sha256 and hashlib.sha256(value).hexdigest() != letter.original_sha256:
        raise ReplayError(f"{letter.event_id}: the original does not match its SHA-256")
    return value


def _event_id(value: bytes) -> str | None:
    try:
        data = json.loads(value)
    except ValueError:
        return None
    event_id = data.get("event_id") if isinstance(data, dict) else None
    return event_id if isinstance(event_id, str) else None


async def replay(
    letters: Sequence[DeadLetter],
    kafka: KafkaSettings,
    db: AsyncDatabase[Document],
    out: TextIO,
) -> int:
    """Publish each letter's original to its topic; the number replayed."""
    archive = DeadLetterArchive(db)
    ledger = MongoNotifierStore(db)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers,
        acks="all",
        enable_idempotence=kafka.idempotent_producer,
        client_id="sotong-deadletter",
    )
    await producer.start()
    replayed = 0
    try:
        for letter in letters:
            value = await original_value(letter, archive)
            forgotten = 0
            event_id = _event_id(value)
            if letter.consumer == "notifier" and event_id is not None:
                forgotten = await ledger.forget_failed(event_id)
            headers = [
                (k, v.encode()) for k, v in letter.original_headers.items() if k != REPLAY_HEADER
            ]
            headers.append((REPLAY_HEADER, letter.event_id.encode()))
            await producer.send_and_wait(
                letter.original_topic,
                value,
                key=letter.original_key.encode() if letter.original_key else None,
                headers=headers,
            )
            replayed += 1
            note = f", {forgotten} failed notifier deliveries reset" if forgotten else ""
            print(f"replayed {letter.event_id} to {letter.original_topic}{note}", file=out)
    finally:
        await producer.stop()
    return replayed


def _time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=KST)


def _filters(args: argparse.Namespace) -> Filters:
    return Filters(
        topic=args.topic,
        consumer=args.consumer,
        since=args.since,
        until=args.until,
        reason=args.reason,
    )


async def _run(args: argparse.Namespace, out: TextIO) -> int:
    kafka = KafkaSettings()
    mongo = MongoSettings()
    client = make_client(mongo, app_name="deadletter")
    try:
        db = database(client, mongo)
        listed = await list_letters(kafka, db, _filters(args))
        if args.deadletter_command == "list":
            describe(listed, out)
            return 0
        chosen = listed.letters
        if args.ids:
            by_id = {letter.event_id: letter for letter in chosen}
            missing = [i for i in args.ids if i not in by_id]
            if missing:
                print(f"no such dead letter (with these filters): {', '.join(missing)}", file=out)
                return 2
            chosen = [by_id[i] for i in args.ids]
        elif not args.all:
            print("name letter ids, or --all for every letter the filters match", file=out)
            return 2
        try:
            await replay(chosen, kafka, db, out)
        except ReplayError as exc:
            print(str(exc), file=out)
            return 1
        return 0
    finally:
        await client.close()


def cmd_deadletter(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args, sys.stdout))


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topic", help="original topic (with or without the prefix)")
    parser.add_argument("--consumer", help="the service that dead-lettered it")
    parser.add_argument("--since", type=_time, help="ISO time (Korea time if no offset)")
    parser.add_argument("--until", type=_time, help="ISO time (Korea time if no offset)")
    parser.add_argument("--reason", help="text the reason contains (case-insensitive)")


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    """Add ``deadletter list|replay`` to the ``sotong`` command line."""
    parser = sub.add_parser("deadletter", help="list dead letters, or replay them")
    commands = parser.add_subparsers(dest="deadletter_command", required=True)
    listing = commands.add_parser("list", help="dead letters, without their contents")
    _add_filters(listing)
    replaying = commands.add_parser("replay", help="send originals back to their topics")
    replaying.add_argument("ids", nargs="*", help="letter ids (from list)")
    replaying.add_argument("--all", action="store_true", help="every letter the filters match")
    _add_filters(replaying)
    parser.set_defaults(func=cmd_deadletter)


__all__ = ["Filters", "list_letters", "register", "replay"]
