"""Pure rules of filing: ids, receipt numbers, tracking tokens, the ComplaintFiled event."""

import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from schemas import ComplaintFiled, ComplaintSubmitted
from schemas.events import PhotoRef
from schemas.pii import mask_rrns
from schemas.tokens import hash_token

KST = ZoneInfo("Asia/Seoul")


def new_complaint_id() -> str:
    return str(uuid.uuid4())


def new_receipt_number(now: datetime) -> str:
    """``YYMMDD-NNNNNN``: short enough to read out on the phone, unique per day by index."""
    return f"{now.astimezone(KST):%y%m%d}-{secrets.randbelow(1_000_000):06d}"


def new_tracking_token() -> str:
    """Unguessable: 192 bits from the OS's CSPRNG."""
    return secrets.token_urlsafe(24)


def file_submission(
    submission: ComplaintSubmitted,
    *,
    complaint_id: str,
    receipt_number: str,
    tracking_token: str,
    resident_token: str,
    filed_at: datetime,
    photos: Sequence[PhotoRef] = (),
    channel_client: str | None = None,
    contact_unconfirmed: bool = False,
) -> ComplaintFiled:
    """The filing as stored and published. A 주민등록번호 in the title, body or chat is
    masked here, not refused: nobody handling a complaint needs one, a refusal would make
    the resident retype (and fail a Kafka channel's or a chat's submission outright), and
    the rest of what they wrote is kept as written (see ``schemas.pii``)."""
    return ComplaintFiled(
        complaint_id=complaint_id,
        receipt_number=receipt_number,
        tracking_token_hash=hash_token(tracking_token),
        resident_token_hash=hash_token(resident_token),
        channel=submission.channel,
        channel_ref=submission.channel_ref,
        channel_client=channel_client,
        resident=submission.resident,
        title=mask_rrns(submission.title),
        body=mask_rrns(submission.body),
        service_code=submission.service_code,
        location=submission.location,
        attachments=submission.attachments,
        transcript=[
            t.model_copy(update={"text": mask_rrns(t.text)}) for t in submission.transcript
        ],
        submitted_at=submission.occurred_at,
        occurred_at=filed_at,
        photos=list(photos),
        joins=submission.joins,
        contact_unconfirmed=contact_unconfirmed,
    )
