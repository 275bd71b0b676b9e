"""intake's composition root: settings → runtime → store → HTTP routes and Kafka subscriber."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Body, FastAPI, Header, Path, Response
from prometheus_client import Counter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from intake.filing import file_submission, new_complaint_id, new_receipt_number, new_tracking_token
from intake.settings import IntakeSettings
from intake.store import (
    RELAY_GRACE,
    FiledRecord,
    MongoSubmissionStore,
    ReceiptCollision,
    SubmissionStore,
)
from schemas import ComplaintSubmitted, DepartmentAction, topics
from schemas.commands import COMMAND_ADAPTER, RESIDENT, ResidentAction
from schemas.events import utcnow
from services.errors import PermanentError, field_errors
from services.http import ApiError, service_app
from services.keys import ApiKeys
from services.logs import bound
from services.runtime import Runtime

log = logging.getLogger("sotong.intake")


class FiledResponse(BaseModel):
    complaint_id: str
    receipt_number: str
    tracking_token: str = Field(description="Keep it: it is the only way to follow the complaint.")
    resident_token: str = Field(
        description="Follows all of this resident's complaints; pass it when filing the next one."
    )
    duplicate: bool = Field(description="True when this (channel, channel_ref) was filed before.")


class CommandRequest(BaseModel):
    """A department's command. Which fields an action needs is checked per action."""

    model_config = ConfigDict(extra="forbid")

    action: DepartmentAction
    note: str | None = Field(default=None, max_length=2000, description="Result, reason or remark.")
    to_department: str | None = Field(
        default=None, description="transfer: the receiving department."
    )
    new_due_at: AwareDatetime | None = Field(default=None, description="extend: the new due time.")
    resident_consent: bool | None = Field(default=None, description="extend: consent recorded.")
    remedy: str | None = Field(default=None, max_length=1000, description="reject: the remedy.")
    handler_id: str | None = Field(default=None, description="reassign: a specific handler.")


class ResidentRequest(BaseModel):
    """What a resident may do with their own complaint, proven by the tracking token."""

    model_config = ConfigDict(extra="forbid")

    action: ResidentAction
    token: str = Field(min_length=1, max_length=200)
    note: str | None = Field(default=None, max_length=2000)


class CommandAccepted(BaseModel):
    command_id: str
    complaint_id: str
    action: str


class UnknownResidentToken(PermanentError):
    """A resident token intake never issued: refused (422 on HTTP, dead letter on Kafka)."""


class Intake:
    """Filing, shared by the HTTP route and the Kafka subscriber so both validate alike."""

    def __init__(self, runtime: Runtime, store: SubmissionStore) -> None:
        self.runtime = runtime
        self.store = store
        self.filed_total = Counter(
            "sotong_complaints_filed_total",
            "Complaints filed, by channel.",
            ["channel"],
            registry=runtime.registry,
        )
        self.duplicates_total = Counter(
            "sotong_submissions_duplicate_total",
            "Re-submissions of an already filed (channel, channel_ref).",
            ["channel"],
            registry=runtime.registry,
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
        await self.store.remember_resident(resident_token, utcnow())
        while True:
            filed = file_submission(
                submission,
                complaint_id=complaint_id,
                receipt_number=new_receipt_number(utcnow()),
                tracking_token=token,
                resident_token=resident_token,
                filed_at=utcnow(),
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
        await self.runtime.publish(topics.FILED, record.filed, correlation_id=record.filed.event_id)
        await self.store.mark_published(record.filed.complaint_id)

    async def relay_forever(self, interval: float) -> None:
        """Publish what a crash left unpublished (the outbox's other half)."""
        while True:
            await asyncio.sleep(interval)
            try:
                for record in await self.store.unpublished(older_than=utcnow() - RELAY_GRACE):
                    with bound(complaint_id=record.filed.complaint_id):
                        log.warning("relaying unpublished ComplaintFiled")
                        await self._publish(record)
            except Exception:
                log.exception("outbox relay failed; will try again")


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    runtime = Runtime.build("intake", settings)
    store = MongoSubmissionStore(runtime.db)
    intake = Intake(runtime, store)

    @runtime.subscriber(topics.SUBMISSIONS)
    async def on_submission(submission: ComplaintSubmitted) -> None:
        await intake.accept(submission)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with runtime.running(
            before_start=store.ensure_indexes,
            background=[lambda: intake.relay_forever(settings.relay_interval_seconds)],
        ):
            yield

    app = service_app(
        name="intake",
        title="Sotong intake",
        description="File complaints (민원) and send department commands.",
        lifespan=lifespan,
        registry=runtime.registry,
        readiness=lambda _: runtime.readiness(),
    )
    app.state.runtime = runtime

    @app.post("/v1/complaints", status_code=201, response_model=FiledResponse)
    async def file_complaint(submission: ComplaintSubmitted, response: Response) -> FiledResponse:
        """File a complaint; the same (channel, channel_ref) again answers 200 with the same one."""
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

    keys = ApiKeys(settings.api_keys)
    if not settings.api_keys:
        log.warning("no department API keys configured: every command will be refused")

    async def publish_command(fields: dict[str, Any]) -> CommandAccepted:
        try:
            command = COMMAND_ADAPTER.validate_python(fields)
        except ValidationError as exc:
            fields_ = field_errors(exc)
            message = "; ".join(f"{f.field}: {f.reason}" for f in fields_)
            raise ApiError(422, "invalid_request", message) from exc
        await runtime.publish(topics.COMMANDS, command, correlation_id=command.event_id)
        return CommandAccepted(
            command_id=command.event_id, complaint_id=command.complaint_id, action=command.action
        )

    @app.post(
        "/v1/complaints/{complaint_id}/commands", status_code=202, response_model=CommandAccepted
    )
    async def send_command(
        complaint_id: Annotated[str, Path(min_length=1, max_length=64)],
        request: Annotated[CommandRequest, Body()],
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> CommandAccepted:
        """Publish a department command, acting as the department the API key belongs to.

        routing decides whether it is legal (only the responsible department may act);
        a refusal appears on ``complaint.rejections`` and in the tracker view.
        """
        department = keys.department(x_api_key)
        if department is None:
            raise ApiError(401, "unauthorized", "a valid X-Api-Key header is required")
        fields = request.model_dump(exclude_none=True)
        return await publish_command(fields | {"complaint_id": complaint_id, "actor": department})

    @app.post(
        "/v1/complaints/{complaint_id}/resident-actions",
        status_code=202,
        response_model=CommandAccepted,
    )
    async def resident_action(
        complaint_id: Annotated[str, Path(min_length=1, max_length=64)],
        request: Annotated[ResidentRequest, Body()],
    ) -> CommandAccepted:
        """The resident answers a 보완 요청, withdraws (취하) or reopens (재민원) a complaint."""
        if not await store.token_matches(complaint_id, request.token):
            raise ApiError(404, "not_found", "no such complaint")
        fields = request.model_dump(exclude_none=True, exclude={"token"})
        return await publish_command(fields | {"complaint_id": complaint_id, "actor": RESIDENT})

    return app
