"""What arrives at intake and what it does: a submission (HTTP or ``complaint.submissions``)
becomes one stored complaint and one ComplaintFiled; a department's or resident's request
becomes one command on ``complaint.commands``.

Read top-down: ``Intake`` (filing, dedup, the outbox and its relay), ``subscribe`` (the
Kafka subscriber), ``routes`` (the HTTP API).
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Response, Security
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

from intake.api import (
    CommandAccepted,
    ComplaintId,
    DepartmentCommand,
    FiledResponse,
    FilingRequest,
    ResidentRequest,
)
from intake.filing import file_submission, new_complaint_id, new_receipt_number, new_tracking_token
from intake.store import RELAY_GRACE, FiledRecord, ReceiptCollision, SubmissionStore
from schemas import ComplaintSubmitted, topics
from schemas.commands import COMMAND_ADAPTER, RESIDENT
from services.broker import KeyedEvent
from services.errors import PermanentError, field_errors
from services.http import ApiError
from services.keys import API_KEY, ApiKeys
from services.logs import bound
from services.openapi import refusals
from services.replay import Replayer
from services.runtime import Clock, Publish

log = logging.getLogger("sotong.intake")


class UnknownResidentToken(PermanentError):
    """A resident token intake never issued: refused (422 on HTTP, dead letter on Kafka)."""


class Intake:
    """Filing, shared by the HTTP route and the Kafka subscriber so both validate alike."""

    def __init__(
        self,
        *,
        store: SubmissionStore,
        publish: Publish,
        clock: Clock,
        registry: CollectorRegistry,
    ) -> None:
        self.store = store
        self.publish = publish
        self.clock = clock
        self.filed_total = Counter(
            "sotong_complaints_filed_total",
            "Complaints filed, by channel.",
            ["channel"],
            registry=registry,
        )
        self.duplicates_total = Counter(
            "sotong_submissions_duplicate_total",
            "Re-submissions of an already filed (channel, channel_ref).",
            ["channel"],
            registry=registry,
        )

    async def accept(self, submission: ComplaintSubmitted) -> tuple[FiledRecord, bool]:
        """File a submission once; return (record, duplicate)."""
        if submission.channel_ref is not None:
            existing = await self.store.find_by_channel_ref(
                submission.channel, submission.channel_ref
            )
            if existing is not None:
                return await self._duplicate(existing), True
        complaint_id = new_complaint_id()
        token = new_tracking_token()
        resident_token = submission.resident_token or new_tracking_token()
        if submission.resident_token and not await self.store.known_resident(resident_token):
            raise UnknownResidentToken("resident_token: not issued by an earlier filing")
        await self.store.remember_resident(resident_token, self.clock())
        while True:
            filed = file_submission(
                submission,
                complaint_id=complaint_id,
                receipt_number=new_receipt_number(self.clock()),
                tracking_token=token,
                resident_token=resident_token,
                filed_at=self.clock(),
            )
            try:
                record = await self.store.insert(filed, token, resident_token)
            except ReceiptCollision:
                continue
            break
        if record is None:  # lost a race with a concurrent identical submission
            assert submission.channel_ref is not None
            existing = await self.store.find_by_channel_ref(
                submission.channel, submission.channel_ref
            )
            assert existing is not None, "duplicate key without a document"
            return await self._duplicate(existing), True
        with bound(complaint_id=complaint_id, correlation_id=submission.event_id):
            await self._publish(record)
            self.filed_total.labels(submission.channel.value).inc()
            log.info("complaint filed", extra={"channel": submission.channel.value})
        return record, False

    async def _duplicate(self, record: FiledRecord) -> FiledRecord:
        self.duplicates_total.labels(record.filed.channel.value).inc()
        if not record.published:
            await self._publish(record)
        return record

    async def _publish(self, record: FiledRecord) -> None:
        await self.publish(topics.FILED, record.filed, correlation_id=record.filed.event_id)
        await self.store.mark_published(record.filed.complaint_id)

    async def relay(self) -> None:
        """Publish what a crash left unpublished (the outbox's other half)."""
        for record in await self.store.unpublished(older_than=self.clock() - RELAY_GRACE):
            with bound(complaint_id=record.filed.complaint_id):
                log.warning("relaying unpublished ComplaintFiled")
                await self._publish(record)

    async def published_since(
        self, since: datetime
    ) -> AsyncIterator[tuple[str, KeyedEvent, str | None]]:
        """What a replay publishes again (``services.replay``): the filings of the window."""
        async for record in self.store.published_since(since):
            yield topics.FILED, record.filed, record.filed.event_id

    async def relay_forever(self, interval: float, replayer: Replayer | None = None) -> None:
        """Relay every ``interval`` seconds, after checking the broker is the one last
        published to (a replay if not); a failed pass is logged and tried again."""
        try:
            while True:
                await asyncio.sleep(interval)
                try:
                    if replayer is not None:
                        await replayer.check()
                    await self.relay()
                except Exception:
                    log.exception("outbox relay failed; will try again")
        finally:
            if replayer is not None:
                await replayer.close()


Subscriber = Callable[[str], Callable[[Callable[..., Awaitable[None]]], object]]
"""Makes an at-least-once subscriber for a topic: ``Runtime.subscriber``."""


def subscribe(subscriber: Subscriber, intake: Intake) -> None:
    """Channels without HTTP (KakaoTalk, chatbot, call centre bridges) publish submissions
    on Kafka; they are filed exactly as the HTTP route files them. An unknown resident
    token is permanent, so the dead-letter middleware sets the message aside."""

    @subscriber(topics.SUBMISSIONS)
    async def on_submission(submission: ComplaintSubmitted) -> None:
        await intake.accept(submission)


def routes(
    *,
    intake: Intake,
    store: SubmissionStore,
    publish: Publish,
    keys: ApiKeys,
    clock: Clock,
) -> APIRouter:
    """The HTTP API, bound to the collaborators the composition root chose."""
    router = APIRouter()

    @router.post(
        "/v1/complaints",
        status_code=201,
        response_model=FiledResponse,
        responses={
            201: {"description": "Filed: a new complaint (`duplicate: false`)."},
            200: {
                "model": FiledResponse,
                "description": "Filed before: this (channel, channel_ref) was filed already, "
                "and this is that complaint (`duplicate: true`).",
            },
            **refusals(422),
        },
        tags=["channels"],
    )
    async def file_complaint(
        request: Annotated[FilingRequest, Body()], response: Response
    ) -> FiledResponse:
        """File a complaint; the same (channel, channel_ref) again answers 200 with the same one."""
        submission = ComplaintSubmitted.model_validate({**dict(request), "occurred_at": clock()})
        try:
            record, duplicate = await intake.accept(submission)
        except UnknownResidentToken as exc:
            raise ApiError(422, "invalid_request", str(exc)) from exc
        if duplicate:
            response.status_code = 200
        return FiledResponse(
            complaint_id=record.filed.complaint_id,
            receipt_number=record.filed.receipt_number,
            tracking_token=record.tracking_token,
            resident_token=record.resident_token,
            duplicate=duplicate,
        )

    async def publish_command(fields: dict[str, Any]) -> CommandAccepted:
        try:
            command = COMMAND_ADAPTER.validate_python(fields | {"occurred_at": clock()})
        except ValidationError as exc:
            fields_ = field_errors(exc)
            message = "; ".join(f"{f.field}: {f.reason}" for f in fields_)
            raise ApiError(422, "invalid_request", message) from exc
        await publish(topics.COMMANDS, command, correlation_id=command.event_id)
        return CommandAccepted(
            command_id=command.event_id, complaint_id=command.complaint_id, action=command.action
        )

    async def acting_department(key: Annotated[str | None, Security(API_KEY)] = None) -> str:
        """The department the key belongs to; checked before the body, so a caller without
        a key learns that first."""
        department = keys.department(key)
        if department is None:
            raise ApiError(401, "unauthorized", "a valid X-Api-Key header is required")
        return department

    @router.post(
        "/v1/complaints/{complaint_id}/commands",
        status_code=202,
        response_model=CommandAccepted,
        responses={202: {"description": "Accepted: published for routing."}, **refusals(401, 422)},
        tags=["departments"],
    )
    async def send_command(
        complaint_id: Annotated[ComplaintId, Path(description="The complaint's id from filing.")],
        request: Annotated[DepartmentCommand, Body()],
        department: Annotated[str, Depends(acting_department)],
    ) -> CommandAccepted:
        """Publish a department command, acting as the department the API key belongs to.

        What the action needs is checked here (422); whether it is legal now (only the
        responsible department may act, and only from some states) routing decides: a
        refusal appears on ``complaint.rejections`` and in the tracker view.
        """
        fields = request.model_dump(exclude_none=True)
        return await publish_command(
            fields | {"complaint_id": str(complaint_id), "actor": department}
        )

    @router.post(
        "/v1/complaints/{complaint_id}/resident-actions",
        status_code=202,
        response_model=CommandAccepted,
        responses={
            202: {"description": "Accepted: published for routing."},
            **refusals(404, 422, described={404: "No complaint with this id and tracking token."}),
        },
        tags=["residents"],
    )
    async def resident_action(
        complaint_id: Annotated[ComplaintId, Path(description="The complaint's id from filing.")],
        request: Annotated[ResidentRequest, Body()],
    ) -> CommandAccepted:
        """The resident answers a 보완 요청, withdraws (취하) or reopens (재민원) a complaint."""
        if not await store.token_matches(str(complaint_id), request.token):
            raise ApiError(404, "not_found", "no such complaint")
        fields = request.model_dump(exclude_none=True, exclude={"token"})
        return await publish_command(
            fields | {"complaint_id": str(complaint_id), "actor": RESIDENT}
        )

    return router
