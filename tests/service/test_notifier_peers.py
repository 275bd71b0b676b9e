"""The real channel adapters against real peers on this machine.

Stand-ins for the outside world, each a real server over TCP: a BizMessage (AlimTalk)
provider and an SMS gateway on pytest-httpserver, a department's webhook receiver that
verifies signatures with the helper integrators get, and an SMTP server (aiosmtpd). The
fakes behave as the module docstrings of the adapters say real peers do — they drop a
repeated idempotency key, refuse with ``{"code": ...}`` — and the tests below hold the
adapters to that contract. Other notifier tests import the fakes from here.
"""

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import SecretStr
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from notifier.alimtalk import AlimTalkChannel
from notifier.channel import ChannelRetryable, Message
from notifier.mail import EmailChannel
from notifier.sms import SmsChannel
from notifier.templates import Catalogue, Content
from notifier.webhook import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookChannel,
    WebhookTarget,
    verify_signature,
)
from schemas import ComplaintState
from services.errors import PermanentError, RetryableError
from sotong import localstack
from tests.fakes.notifier import LETTERHEAD

ALIMTALK_KEY = "test-alimtalk-key"
SENDER_KEY = "test-sender-profile"
SMS_KEY = "test-sms-key"
SMS_SENDER = "032-560-0000"
HOOK_SECRET = "roads-webhook-secret-0123"
PHONE = "010-2345-6789"
EMAIL = "hong@example.kr"


@dataclass(frozen=True)
class Received:
    body: dict[str, Any]
    headers: dict[str, str]
    raw: bytes


def _json(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body), status=status, headers=headers, content_type="application/json"
    )


@dataclass
class FakeProvider:
    """A BizMessage provider or SMS gateway: checks the key, refuses some numbers, drops a
    repeated ``Idempotency-Key``, and plays a script of failures first when given one.

    ``script`` items: an int answers with that status; a float sleeps that long first
    (longer than the client waits: a timeout) and then answers 200 to nobody."""

    server: HTTPServer
    path: str
    api_key: str
    to_field: str
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)
    script: list[int | float] = field(default_factory=list)
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    accepted: list[Received] = field(default_factory=list)
    repeats: int = 0
    _keys: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.server.expect_request(self.path, method="POST").respond_with_handler(self._handle)

    @property
    def url(self) -> str:
        return str(self.server.url_for(self.path))

    def refuse(self, phone: str, code: str = "NOT_KAKAO_USER", status: int = 400) -> None:
        self.refused[phone.replace("-", "")] = (status, code)

    def accepted_for(self, phone: str) -> list[Received]:
        digits = phone.replace("-", "")
        with self._lock:
            return [r for r in self.accepted if r.body.get(self.to_field) == digits]

    def requests_for(self, phone: str) -> list[Received]:
        digits = phone.replace("-", "")
        with self._lock:
            return [r for r in self.requests if r.body.get(self.to_field) == digits]

    def _handle(self, request: Request) -> Response:
        raw = request.get_data()
        received = Received(json.loads(raw), dict(request.headers), raw)
        with self._lock:
            self.requests.append(received)
            step = self.script.pop(0) if self.script else None
        if self.delay:
            time.sleep(self.delay)
        if isinstance(step, float):
            time.sleep(step)
            return _json({"result": "accepted"}, 200)
        if isinstance(step, int):
            headers = {"Retry-After": "0"} if step == 429 else None
            return _json({"code": "SCRIPTED", "message": "scripted failure"}, step, headers)
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _json({"code": "UNAUTHORIZED"}, 401)
        refusal = self.refused.get(str(received.body.get(self.to_field)))
        if refusal is not None:
            return _json({"code": refusal[1], "message": "refused"}, refusal[0])
        key = request.headers.get("Idempotency-Key", "")
        with self._lock:
            if key in self._keys:
                self.repeats += 1
                return _json({"result": "accepted", "duplicate": True}, 200)
            self._keys.add(key)
            self.accepted.append(received)
        return _json({"result": "accepted", "message_id": key}, 200)


@dataclass
class FakeReceiver:
    """A department system: verifies every request as the integrator guide says, drops a
    repeated ``X-Sotong-Delivery``."""

    server: HTTPServer
    path: str
    secret: str
    script: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    accepted: list[Received] = field(default_factory=list)
    refused_signatures: int = 0
    repeats: int = 0
    held: int = 0
    """Requests held (see :meth:`hold`), answered 503 once let go and never kept."""
    passed: int = 0
    """Requests let through since :meth:`hold` was called."""
    _hold_after: int | None = None
    _release: threading.Event = field(default_factory=threading.Event)
    _keys: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.server.expect_request(self.path, method="POST").respond_with_handler(self._handle)

    @property
    def url(self) -> str:
        return str(self.server.url_for(self.path))

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.body for r in self.accepted]

    def hold(self, after: int) -> None:
        """Answer the next ``after`` requests, then hold every later one unanswered (a
        receiver gone slow: the caller's batch waits on it) until :meth:`let_go`."""
        with self._lock:
            self._hold_after, self.passed, self.held = after, 0, 0
            self._release.clear()

    def let_go(self) -> None:
        """Answer the held requests 503 (their caller may be gone) and hold no more."""
        with self._lock:
            self._hold_after = None
        self._release.set()

    def _handle(self, request: Request) -> Response:
        raw = request.get_data()
        received = Received(json.loads(raw), dict(request.headers), raw)
        with self._lock:
            self.requests.append(received)
            step = self.script.pop(0) if self.script else None
            hold = self._hold_after is not None and self.passed >= self._hold_after
            if hold:
                self.held += 1
            elif self._hold_after is not None:
                self.passed += 1
        if hold:
            self._release.wait(timeout=120)
            return _json({"code": "HELD"}, 503)
        if step is not None:
            return _json({"code": "SCRIPTED"}, step)
        timestamp = request.headers.get(TIMESTAMP_HEADER, "")
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not verify_signature(self.secret, timestamp, raw, signature):
            with self._lock:
                self.refused_signatures += 1
            return _json({"code": "BAD_SIGNATURE"}, 401)
        key = request.headers.get(DELIVERY_HEADER, "")
        with self._lock:
            if key in self._keys:
                self.repeats += 1
                return _json({"duplicate": True}, 200)
            self._keys.add(key)
            self.accepted.append(received)
        return _json({}, 202)


class SmtpSink:
    """An SMTP server's handler (aiosmtpd): keeps what it accepts, refuses on request."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse_rcpt: dict[str, str] = {}
        self.data_script: list[str] = []

    def reset(self) -> None:
        self.messages, self.refuse_rcpt, self.data_script = [], {}, []

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_script:
            return self.data_script.pop(0)
        content = envelope.content
        assert isinstance(content, bytes)
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted for delivery"


@dataclass
class Smtp:
    sink: SmtpSink
    host: str
    port: int


@contextlib.contextmanager
def http_server() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    try:
        yield server
    finally:
        server.clear()
        server.stop()


@contextlib.contextmanager
def smtp_server() -> Iterator[Smtp]:
    sink = SmtpSink()
    port = localstack.free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield Smtp(sink, "127.0.0.1", port)
    finally:
        controller.stop()


@dataclass
class Peers:
    alimtalk: FakeProvider
    sms: FakeProvider
    hooks: FakeReceiver
    smtp: Smtp


@dataclass
class Servers:
    """The servers, started once per module (stopping one takes a second); each test gets
    fresh fakes on them from :meth:`fresh`."""

    alimtalk: HTTPServer
    sms: HTTPServer
    hooks: HTTPServer
    smtp: Smtp

    def fresh(self) -> Peers:
        for server in (self.alimtalk, self.sms, self.hooks):
            server.clear()
        self.smtp.sink.reset()
        return Peers(
            alimtalk=FakeProvider(self.alimtalk, "/v1/alimtalk", ALIMTALK_KEY, "recipient"),
            sms=FakeProvider(self.sms, "/v1/sms", SMS_KEY, "to"),
            hooks=FakeReceiver(self.hooks, "/hooks/roads", HOOK_SECRET),
            smtp=self.smtp,
        )


@contextlib.contextmanager
def servers() -> Iterator[Servers]:
    with http_server() as alim, http_server() as sms, http_server() as hooks, smtp_server() as mail:
        yield Servers(alim, sms, hooks, mail)


def alimtalk_channel(client: httpx.AsyncClient, provider: FakeProvider) -> AlimTalkChannel:
    return AlimTalkChannel(
        client,
        url=provider.url,
        api_key=SecretStr(ALIMTALK_KEY),
        sender_key=SecretStr(SENDER_KEY),
    )


def sms_channel(client: httpx.AsyncClient, gateway: FakeProvider) -> SmsChannel:
    return SmsChannel(client, url=gateway.url, api_key=SecretStr(SMS_KEY), sender=SMS_SENDER)


def email_channel(smtp: Smtp) -> EmailChannel:
    return EmailChannel(
        host=smtp.host,
        port=smtp.port,
        sender="인천광역시 서구 <no-reply@seo.go.kr>",
        tls="none",
        timeout=2,
    )


def webhook_channel(client: httpx.AsyncClient, receiver: FakeReceiver) -> WebhookChannel:
    return WebhookChannel(
        client, {"roads": WebhookTarget(receiver.url, SecretStr(receiver.secret))}
    )


# -- the adapters against the fakes ------------------------------------------------------


@pytest.fixture(scope="module")
def running() -> Iterator[Servers]:
    with servers() as started:
        yield started


@pytest.fixture
def world(running: Servers) -> Peers:
    return running.fresh()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # generous: a loaded machine must not turn a success into "timed out" (the test of a
    # slow provider has its own short timeout)
    async with httpx.AsyncClient(timeout=5.0) as http:
        yield http


LINK = "https://sotong.example.kr/complaints/c-1"
LETTER = {"sender_name": LETTERHEAD.sender_name, "tracking_url": LINK}


def message(
    delivery_id: str = "ev-1:resident:alimtalk",
    *,
    state: ComplaintState = ComplaintState.RESOLVED,
    note: str | None = None,
    phone: str | None = PHONE,
    words: Content | None = None,
) -> Message:
    values = {"receipt_number": "251125-000001"} | LETTER | ({"note": note} if note else {})
    content = words or Catalogue.load().resident_content(state, None, values)
    return Message(
        delivery_id=delivery_id,
        complaint_id="c-1",
        receipt_number="251125-000001",
        recipient="resident",
        state=state,
        content=content,
        phone=phone,
        email=EMAIL,
    )


async def test_alimtalk_sends_the_registered_template_with_an_idempotency_key(
    world: Peers, client: httpx.AsyncClient
) -> None:
    channel = alimtalk_channel(client, world.alimtalk)
    sent = message(note="수거 완료")
    await channel.deliver(sent)

    [request] = world.alimtalk.accepted
    assert request.headers["Authorization"] == f"Bearer {ALIMTALK_KEY}"
    assert request.headers["Idempotency-Key"] == sent.idempotency_key
    assert request.body == {
        "message_id": sent.idempotency_key,
        "sender_key": SENDER_KEY,
        "template_code": "SOTONG_RESOLVED_NOTE",
        "template_version": 2,
        "recipient": "01023456789",
        "text": "[인천광역시 서구] 민원이 처리 완료됐습니다.\n처리 결과: 수거 완료\n"
        f"접수번호: 251125-000001\n진행 상황: {LINK}",
        "variables": {"receipt_number": "251125-000001", "note": "수거 완료"} | LETTER,
    }


async def test_the_same_key_twice_is_sent_once(world: Peers, client: httpx.AsyncClient) -> None:
    channel = alimtalk_channel(client, world.alimtalk)
    await channel.deliver(message())
    await channel.deliver(message())
    await channel.deliver(message("ev-2:resident:alimtalk"))
    assert len(world.alimtalk.accepted) == 2
    assert world.alimtalk.repeats == 1
    assert not await channel.already_delivered("ev-1:resident:alimtalk"), "it cannot know"


async def test_alimtalk_over_1000_characters_shortens_the_note(
    world: Peers, client: httpx.AsyncClient
) -> None:
    await alimtalk_channel(client, world.alimtalk).deliver(message(note="결과 안내 " * 300))
    [request] = world.alimtalk.accepted
    assert len(request.body["text"]) <= 1000
    assert request.body["text"].endswith(LINK), "only the note is shortened"
    assert "…\n접수번호: 251125-000001" in request.body["text"]
    assert request.body["variables"]["note"].endswith("…")


@pytest.mark.parametrize(
    ("status", "error", "match"),
    [
        (400, PermanentError, "alimtalk provider answered 400 NOT_KAKAO_USER"),
        (403, PermanentError, "answered 403 BLOCKED"),
        (500, ChannelRetryable, "answered 500"),
        (503, ChannelRetryable, "answered 503"),
        (429, ChannelRetryable, "answered 429"),
    ],
)
async def test_alimtalk_refusals_are_permanent_and_outages_retryable(
    world: Peers,
    client: httpx.AsyncClient,
    status: int,
    error: type[Exception],
    match: str,
) -> None:
    code = "BLOCKED" if status == 403 else "NOT_KAKAO_USER"
    if status < 500 and status != 429:
        world.alimtalk.refuse(PHONE, code=code, status=status)
    else:
        world.alimtalk.script.append(status)
    with pytest.raises(error, match=match) as raised:
        await alimtalk_channel(client, world.alimtalk).deliver(message())
    assert PHONE.replace("-", "") not in str(raised.value), "no contact in the reason"
    if status == 429:
        assert isinstance(raised.value, ChannelRetryable)
        assert raised.value.retry_after == 0.0


async def test_a_provider_too_slow_to_answer_is_a_retryable_timeout(world: Peers) -> None:
    world.alimtalk.script.append(2.0)
    async with httpx.AsyncClient(timeout=0.5) as impatient:
        with pytest.raises(ChannelRetryable, match="timed out"):
            await alimtalk_channel(impatient, world.alimtalk).deliver(message())


async def test_a_provider_not_listening_is_retryable(client: httpx.AsyncClient) -> None:
    channel = AlimTalkChannel(
        client,
        url=f"http://127.0.0.1:{localstack.free_port()}/v1/alimtalk",
        api_key=SecretStr("k"),
        sender_key=SecretStr("s"),
    )
    with pytest.raises(ChannelRetryable, match="unreachable"):
        await channel.deliver(message())


async def test_a_missing_phone_is_permanent(world: Peers, client: httpx.AsyncClient) -> None:
    with pytest.raises(PermanentError, match="phone"):
        await alimtalk_channel(client, world.alimtalk).deliver(message(phone=None))
    with pytest.raises(PermanentError, match="phone"):
        await sms_channel(client, world.sms).deliver(message(phone=None))
    assert world.alimtalk.requests == world.sms.requests == []


async def test_sms_gateway_gets_an_sms_or_an_lms_by_bytes(
    world: Peers, client: httpx.AsyncClient
) -> None:
    channel = sms_channel(client, world.sms)
    withdrawn = Catalogue.load().staff_content(
        "withdraw", {"receipt_number": "251125-000001"} | LETTER
    )
    short = message("ev-1:handler:sms", words=withdrawn)
    await channel.deliver(short)
    await channel.deliver(
        message("ev-2:resident:sms", note=("폐기물 수거를 완료했습니다. " * 3).strip())
    )

    sms, lms = (r.body for r in world.sms.accepted)
    assert world.sms.accepted[0].headers["Idempotency-Key"] == short.idempotency_key
    assert (sms["type"], sms["from"], sms["to"]) == ("SMS", "0325600000", "01023456789")
    assert "subject" not in sms
    assert sms["bytes"] == len(sms["text"].encode("cp949")) <= 90
    assert (lms["type"], lms["subject"]) == ("LMS", "[인천광역시 서구] 민원 진행 안내")
    assert 90 < lms["bytes"] <= 2000
    assert "처리 결과: 폐기물 수거를 완료했습니다." in lms["text"]
    assert lms["text"].endswith(LINK)


async def test_email_arrives_over_smtp_in_korean(world: Peers) -> None:
    sent = message("ev-1:resident:email", note="수거 완료")
    await email_channel(world.smtp).deliver(sent)

    [mail] = world.smtp.sink.messages
    assert mail["To"] == EMAIL
    assert mail["Subject"] == "[인천광역시 서구] 민원 진행 안내"
    assert mail["Message-ID"] == f"<{sent.idempotency_key}@sotong>"
    body = mail.get_body()
    assert body is not None
    assert "처리 결과: 수거 완료" in body.get_content()


async def test_smtp_refusals_are_permanent_and_deferrals_retryable(world: Peers) -> None:
    channel = email_channel(world.smtp)
    world.smtp.sink.refuse_rcpt[EMAIL] = "550 5.1.1 mailbox unavailable"
    with pytest.raises(PermanentError, match="550"):
        await channel.deliver(message("ev-1:resident:email"))
    world.smtp.sink.refuse_rcpt.clear()
    world.smtp.sink.data_script.append("451 4.3.0 try again later")
    with pytest.raises(RetryableError, match="451"):
        await channel.deliver(message("ev-1:resident:email"))
    await channel.deliver(message("ev-1:resident:email"))
    assert len(world.smtp.sink.messages) == 1


async def test_an_smtp_server_not_listening_is_retryable() -> None:
    channel = EmailChannel(
        host="127.0.0.1", port=localstack.free_port(), sender="a@b.kr", tls="none", timeout=1
    )
    with pytest.raises(RetryableError):
        await channel.deliver(message("ev-1:resident:email"))


def hook_message(delivery_id: str = "ev-1:department:roads:webhook") -> Message:
    return Message(
        delivery_id=delivery_id,
        complaint_id="c-1",
        receipt_number="251125-000001",
        recipient="department:roads",
        state=ComplaintState.SITE_CHECK,
        cloudevent={"specversion": "1.0", "id": "ev-1", "data": {"note": "현장 확인"}},
        department="roads",
    )


async def test_a_webhook_is_signed_so_the_receiver_can_verify_it(
    world: Peers, client: httpx.AsyncClient
) -> None:
    await webhook_channel(client, world.hooks).deliver(hook_message())

    [request] = world.hooks.accepted
    assert request.headers["Content-Type"].startswith("application/cloudevents+json")
    assert request.body == {"specversion": "1.0", "id": "ev-1", "data": {"note": "현장 확인"}}
    assert abs(int(request.headers[TIMESTAMP_HEADER]) - time.time()) < 5
    assert request.headers[DELIVERY_HEADER] == hook_message().idempotency_key
    assert world.hooks.refused_signatures == 0


async def test_a_webhook_signed_with_another_secret_is_refused_for_good(
    world: Peers, client: httpx.AsyncClient
) -> None:
    wrong = WebhookChannel(
        client, {"roads": WebhookTarget(world.hooks.url, SecretStr("not-the-roads-secret"))}
    )
    with pytest.raises(PermanentError, match="401 BAD_SIGNATURE"):
        await wrong.deliver(hook_message())
    assert world.hooks.refused_signatures == 1


async def test_a_replayed_webhook_is_refused_by_the_receiver(
    world: Peers, client: httpx.AsyncClient
) -> None:
    """A request captured and sent again after the tolerance fails verification."""
    long_ago = WebhookChannel(
        client,
        {"roads": WebhookTarget(world.hooks.url, SecretStr(HOOK_SECRET))},
        clock=lambda: time.time() - 3600,
    )
    with pytest.raises(PermanentError, match="401"):
        await long_ago.deliver(hook_message())
    assert world.hooks.accepted == []


async def test_webhook_outages_are_retryable(world: Peers, client: httpx.AsyncClient) -> None:
    world.hooks.script.append(502)
    with pytest.raises(ChannelRetryable, match="502"):
        await webhook_channel(client, world.hooks).deliver(hook_message())
    await webhook_channel(client, world.hooks).deliver(hook_message())
    assert len(world.hooks.accepted) == 1


async def test_fakes_serve_concurrent_requests(world: Peers, client: httpx.AsyncClient) -> None:
    world.alimtalk.delay = 1.0
    channel = alimtalk_channel(client, world.alimtalk)
    started = time.perf_counter()
    await asyncio.gather(*(channel.deliver(message(f"ev-{i}:resident:alimtalk")) for i in range(4)))
    # one at a time would take 4 s at least; side by side about 1 s, with room for a slow box
    assert time.perf_counter() - started < 3.0, "threaded: a slow request blocks no other"
    assert len(world.alimtalk.accepted) == 4
