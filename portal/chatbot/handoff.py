"""The chatbot's two HTTP collaborators: routing's classifier (``POST /v1/classify``) and
intake's filing API (``POST /v1/complaints``). The bot and the Kakao skill take them as
plain async callables, so tests and the portal can pass their own."""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol

import httpx

from portal.chatbot.bot import Classification, ClassifierUnavailable

Role = Literal["resident", "bot"]


@dataclass(frozen=True)
class Turn:
    role: Role
    text: str


@dataclass(frozen=True)
class Filing:
    """A complaint the resident confirmed in a chat."""

    text: str
    department: str | None
    """The classifier's department, shown to the resident in the offer; routing routes the
    filed text itself (the same classifier), or by ``service_code`` when there is one."""
    channel: Literal["chatbot", "kakao"]
    transcript: tuple[Turn, ...]
    user_key_hash: str
    """A keyed hash of the channel's user id (never the id itself): makes repeated
    confirmations of one offer file once."""
    offer_id: str
    service_code: str | None = None
    phone: str | None = field(default=None, repr=False)
    """The number the resident typed to be told at (sending it is their consent): intake
    sends it a one-time code before anything else."""


@dataclass(frozen=True)
class Receipt:
    """What a filing answered: the receipt number, and — when the phone must be confirmed
    — what confirming needs (a duplicate filing answers the number only)."""

    receipt_number: str
    complaint_id: str | None = None
    tracking_token: str | None = field(default=None, repr=False)
    code_pending: bool = False


class FileComplaint(Protocol):
    async def __call__(self, filing: Filing) -> Receipt:
        """File it and return its receipt; raise ``FilingFailed`` otherwise."""
        ...


class CodeOutcome(StrEnum):
    """intake's answer to a code entered or a new one asked for, as the chat words it."""

    CONFIRMED = "confirmed"
    SENT = "sent"
    WRONG = "wrong_code"
    EXPIRED = "code_expired"
    LOCKED = "too_many_attempts"
    TOO_MANY_CODES = "too_many_codes"
    LIMITED = "rate_limited"
    GONE = "not_found"
    """No code waits for this complaint (any more)."""


class ContactCodes(Protocol):
    """intake's ``POST /v1/complaints/{id}/contact/confirm`` and ``…/contact/code``."""

    async def confirm(
        self, complaint_id: str, tracking_token: str, code: str, user_key_hash: str
    ) -> CodeOutcome: ...

    async def resend(
        self, complaint_id: str, tracking_token: str, user_key_hash: str
    ) -> CodeOutcome: ...


class FilingFailed(Exception):
    """intake did not accept the complaint (unreachable, refused, or too slow)."""


class FilingUnavailable(FilingFailed):
    pass


MAX_TURNS = 40
MAX_TURN_CHARS = 1000


def transcript_payload(turns: Sequence[Turn]) -> list[dict[str, str]]:
    """The latest turns within the contract's bounds (40 turns, 1,000 characters each)."""
    kept = [t for t in turns if t.text.strip()][-MAX_TURNS:]
    return [{"role": t.role, "text": t.text.strip()[:MAX_TURN_CHARS]} for t in kept]


class IntakeFiler:
    """``FileComplaint`` and ``ContactCodes`` over intake's HTTP API. ``channel_ref`` is
    derived from the user hash and the offer, so a retried confirmation answers with the
    complaint filed first."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 3.0,
    ) -> None:
        self.client = client
        self.url = f"{base_url.rstrip('/')}/v1/complaints"
        self.headers = {"X-Api-Key": api_key} if api_key else {}
        self.timeout = timeout

    def _as(self, user_key_hash: str) -> dict[str, str]:
        # with a credential, intake limits each Kakao user (by the keyed hash, never the id)
        return self.headers | ({"X-End-User": user_key_hash} if self.headers else {})

    async def __call__(self, filing: Filing) -> Receipt:
        ref = hashlib.sha256(f"{filing.user_key_hash}|{filing.offer_id}".encode()).hexdigest()
        body: dict[str, object] = {
            "channel": filing.channel,
            "channel_ref": f"{filing.channel}-{ref[:40]}",
            "body": filing.text[:4000],
            "transcript": transcript_payload(filing.transcript),
        }
        if filing.service_code:
            body["service_code"] = filing.service_code
        if filing.phone:
            body["resident"] = {"phone": filing.phone, "notification_consent": True}
        try:
            response = await self.client.post(
                self.url, json=body, headers=self._as(filing.user_key_hash), timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise FilingUnavailable(f"intake unreachable: {type(exc).__name__}") from exc
        if response.status_code not in (200, 201):
            # the status only: an error's message may quote what the resident wrote
            raise FilingFailed(f"intake answered {response.status_code}")
        answer = response.json()
        return Receipt(
            receipt_number=str(answer["receipt_number"]),
            complaint_id=answer.get("complaint_id"),
            tracking_token=answer.get("tracking_token"),
            code_pending=answer.get("contact") is not None and bool(answer.get("tracking_token")),
        )

    async def confirm(
        self, complaint_id: str, tracking_token: str, code: str, user_key_hash: str
    ) -> CodeOutcome:
        return await self._contact(
            f"{self.url}/{complaint_id}/contact/confirm",
            tracking_token,
            user_key_hash,
            {"code": code},
            CodeOutcome.CONFIRMED,
        )

    async def resend(
        self, complaint_id: str, tracking_token: str, user_key_hash: str
    ) -> CodeOutcome:
        return await self._contact(
            f"{self.url}/{complaint_id}/contact/code",
            tracking_token,
            user_key_hash,
            None,
            CodeOutcome.SENT,
        )

    async def _contact(
        self,
        url: str,
        tracking_token: str,
        user_key_hash: str,
        body: dict[str, str] | None,
        done: CodeOutcome,
    ) -> CodeOutcome:
        headers = self._as(user_key_hash) | {"X-Tracking-Token": tracking_token}
        try:
            response = await self.client.post(url, json=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise FilingUnavailable(f"intake unreachable: {type(exc).__name__}") from exc
        if response.status_code in (200, 202):
            return done
        try:
            code = str(response.json()["error"]["code"])
        except (ValueError, KeyError, TypeError):
            code = ""
        if code == "already_confirmed":
            return CodeOutcome.CONFIRMED
        try:
            return CodeOutcome(code)
        except ValueError:
            raise FilingFailed(f"intake answered {response.status_code}") from None


class RoutingClassifier:
    """``Classify`` over routing's HTTP API; any failure is ``ClassifierUnavailable`` so the
    bot answers without a department rather than not at all."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, *, timeout: float = 1.5) -> None:
        self.client = client
        self.url = f"{base_url.rstrip('/')}/v1/classify"
        self.timeout = timeout

    async def __call__(self, text: str) -> Classification:
        try:
            response = await self.client.post(
                self.url, json={"texts": [text[:4000]]}, timeout=self.timeout
            )
            response.raise_for_status()
            answer = response.json()["predictions"][0]
            return Classification(
                department=str(answer["department"]),
                confidence=float(answer["confidence"]),
                auto=bool(answer["auto"]),
            )
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise ClassifierUnavailable(type(exc).__name__) from exc
