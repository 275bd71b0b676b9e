"""The seam between deciding to notify and a way of reaching someone.

Every channel — the local outbox, KakaoTalk AlimTalk, SMS/LMS, e-mail, department
webhooks — is one ``Channel``: a bounded ``name`` and two methods. Exactly-once rests on
what a channel promises:

- ``deliver`` either hands the whole message over or raises: ``RetryableError`` when
  trying again can help (a timeout, a 5xx, a 429), ``PermanentError`` when it never will
  (a 4xx, a recipient the provider refuses). Delivery retries the first with backoff and
  records the second as a failed outcome; anything else is a bug and propagates.
- ``already_delivered`` answers, after a crash mid-send, whether a delivery id went out.
  A channel that cannot know (an HTTP provider) answers False and relies on the
  idempotency key it sent with the first attempt: the provider, or the webhook receiver,
  drops the repeat. :attr:`Message.idempotency_key` is the same for every attempt of one
  (event, recipient, channel).
"""

import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import httpx
from pydantic import SecretStr

from notifier.templates import Content
from schemas import ComplaintState
from services.errors import PermanentError, RetryableError

RESIDENT = "resident"
HANDLER = "handler"
SUPERVISOR = "supervisor"
DEPARTMENT_PREFIX = "department:"
OPEN311_PREFIX = "open311:"
"""An Open311 client app as a recipient (and its webhook's key): ``open311:{app}``."""


@dataclass(frozen=True)
class Message:
    """One message to one recipient over one channel. The contact fields stay out of
    ``repr`` so a message that reaches a log or a traceback does not carry personal data.

    ``content`` is what a person reads; ``cloudevent`` is what a department system
    receives (a webhook has no template).
    """

    delivery_id: str
    complaint_id: str
    receipt_number: str
    recipient: str
    state: ComplaintState
    content: Content | None = None
    cloudevent: Mapping[str, Any] | None = None
    department: str | None = None
    phone: str | None = field(default=None, repr=False)
    email: str | None = field(default=None, repr=False)
    webhook: str | None = None
    """Whose webhook a CloudEvent goes to when it is not the department's: an Open311
    app's (``open311:{app}``)."""

    @property
    def idempotency_key(self) -> str:
        """Stable per delivery id, so a provider can drop a repeated send."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"sotong:delivery:{self.delivery_id}"))

    def words(self) -> Content:
        if self.content is None:
            raise PermanentError(f"{self.recipient} message has no text to send")
        return self.content

    @property
    def text(self) -> str:
        return self.words().text

    @property
    def template_code(self) -> str:
        return self.words().template.template_code

    @property
    def template_version(self) -> int:
        return self.words().template.version


class Channel(Protocol):
    @property
    def name(self) -> str:
        """A short, bounded label: it names deliveries and metric series."""
        ...

    async def deliver(self, message: Message) -> None:
        """Send all of it or raise: RetryableError if trying again can help, PermanentError
        if it never will. The error's text becomes the failed outcome's ``detail``, so it
        must not carry the recipient's contact."""
        ...

    async def already_delivered(self, delivery_id: str) -> bool:
        """Whether a message with this delivery id went out, asked after a crash mid-send."""
        ...


class ChannelRetryable(RetryableError):
    """A retryable refusal, perhaps with the provider's own ``Retry-After`` (seconds)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


async def post(
    client: httpx.AsyncClient,
    what: str,
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
) -> httpx.Response:
    """POST and classify the answer the same way for every HTTP peer: 2xx is success;
    timeouts, connection errors, 408/425/429/5xx are worth retrying; any other status is
    a refusal. Only the status and the peer's error code reach the error text: the body
    could echo a phone number."""
    try:
        response = await client.post(url, content=content, headers=dict(headers))
    except httpx.TimeoutException as exc:
        raise ChannelRetryable(f"{what} timed out ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        raise ChannelRetryable(f"{what} unreachable ({type(exc).__name__})") from None
    if response.is_success:
        return response
    code = _error_code(response)
    reason = f"{what} answered {response.status_code}" + (f" {code}" if code else "")
    if response.status_code in RETRYABLE_STATUS or response.status_code >= 500:
        raise ChannelRetryable(reason, retry_after=_retry_after(response))
    raise PermanentError(reason)


async def post_message(
    client: httpx.AsyncClient,
    what: str,
    url: str,
    *,
    payload: Mapping[str, object],
    api_key: str,
    message: Message,
) -> httpx.Response:
    """A provider's JSON request with bearer auth and the message's idempotency key, so a
    send repeated after a crash is dropped by the provider."""
    return await post(
        client,
        what,
        url,
        content=json.dumps(payload, ensure_ascii=False).encode(),
        headers={
            "Authorization": f"Bearer {api_key}",
            "Idempotency-Key": message.idempotency_key,
            "Content-Type": "application/json; charset=utf-8",
        },
    )


@dataclass
class ProviderChannel(ABC):
    """A messaging provider reached by one JSON POST per message (AlimTalk, SMS): bearer
    auth and the message's idempotency key, so a repeated send is dropped by the provider
    and there is nothing to look up before sending again."""

    client: httpx.AsyncClient
    url: str
    api_key: SecretStr
    peer: ClassVar[str] = "provider"

    @abstractmethod
    def request(self, message: Message) -> dict[str, object]:
        """The provider's own body for one message; pure, tested without a server."""

    async def deliver(self, message: Message) -> None:
        await post_message(
            self.client,
            self.peer,
            self.url,
            payload=self.request(message),
            api_key=self.api_key.get_secret_value(),
            message=message,
        )

    async def already_delivered(self, delivery_id: str) -> bool:
        return False  # the idempotency key makes sending again safe


def _error_code(response: httpx.Response) -> str | None:
    """The machine-readable code a peer put in ``{"code": ...}``, if short and plain."""
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    if isinstance(code, str) and code.replace("_", "").replace("-", "").isalnum():
        return code[:64]
    return None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: the backoff decides


def digits(phone: str) -> str:
    """010-1234-5678 → 01012345678: how providers take a number."""
    return "".join(c for c in phone if c.isdigit())
