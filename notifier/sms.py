"""SMS and LMS through an HTTP gateway, sized the way Korean carriers count.

Carriers count a message in bytes of KS X 1001 (EUC-KR/CP949): a Hangul syllable is two
bytes, ASCII one. An SMS holds 90 bytes, an LMS 2,000 (and a title). :func:`compose`
chooses, cheapest first:

1. the whole message as an SMS, if it fits 90 bytes;
2. the message without its optional note (a template's ``note_optional`` variant) as an
   SMS — the reader loses only what the template marked as nice to know;
3. the whole message as an LMS, the note shortened by whole characters only if it would
   pass 2,000 bytes, so a multibyte character is never cut in two.

A character the carriers cannot carry (an emoji, a rare Hanja) becomes "?" before it is
counted, so what is counted is what is sent.

The request Sotong sends::

    POST {SOTONG_NOTIFIER_SMS_URL}
    Authorization: Bearer {SOTONG_NOTIFIER_SMS_API_KEY}
    Idempotency-Key: {uuid, the same for every attempt of one delivery}
    Content-Type: application/json

    {"message_id": "{idempotency key}", "type": "SMS" | "LMS",
     "from": "{SOTONG_NOTIFIER_SMS_SENDER: the pre-registered 발신번호}",
     "to": "01012345678", "subject": "{LMS only}", "text": "...",
     "bytes": 57}

The gateway answers like the AlimTalk provider: 2xx accepted (a repeated key is not
sent twice), 408/425/429/5xx retry, other 4xx refused with ``{"code": ...}``.
"""

from dataclasses import dataclass
from typing import ClassVar, Literal

from notifier.channel import Message, ProviderChannel, digits
from notifier.templates import Content, cp949_length
from services.errors import PermanentError

SMS_BYTES = 90
LMS_BYTES = 2000


def carriable(text: str) -> str:
    """``text`` with every character CP949 cannot encode replaced by "?"."""
    return "".join(c if _encodable(c) else "?" for c in text)


def _encodable(char: str) -> bool:
    try:
        char.encode("cp949")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class Composed:
    kind: Literal["SMS", "LMS"]
    text: str
    subject: str | None

    @property
    def size(self) -> int:
        return cp949_length(self.text)


def compose(content: Content) -> Composed:
    """The cheapest message that says what must be said (see the module docstring)."""
    safe = {name: carriable(value) for name, value in content.values.items()}
    full = content.template.render(safe)
    if cp949_length(full) <= SMS_BYTES:
        return Composed("SMS", full, None)
    if content.short is not None:
        short = content.short.render(safe)
        if cp949_length(short) <= SMS_BYTES:
            return Composed("SMS", short, None)
    text, _ = content.template.fit(safe, limit=LMS_BYTES, measure=cp949_length)
    return Composed("LMS", text, carriable(content.subject))


@dataclass(kw_only=True)
class SmsChannel(ProviderChannel):
    sender: str
    name: ClassVar[str] = "sms"
    peer: ClassVar[str] = "sms gateway"

    def request(self, message: Message) -> dict[str, object]:
        if not message.phone:
            raise PermanentError("sms needs a phone number")
        composed = compose(message.words())
        body: dict[str, object] = {
            "message_id": message.idempotency_key,
            "type": composed.kind,
            "from": digits(self.sender),
            "to": digits(message.phone),
            "text": composed.text,
            "bytes": composed.size,
        }
        if composed.subject is not None:
            body["subject"] = composed.subject
        return body
