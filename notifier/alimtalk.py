"""KakaoTalk AlimTalk (알림톡) through a BizMessage provider's HTTP API.

Real providers differ in field names; this adapter is kept thin so that only this module
changes for another one. The request Sotong sends::

    POST {SOTONG_NOTIFIER_ALIMTALK_URL}
    Authorization: Bearer {SOTONG_NOTIFIER_ALIMTALK_API_KEY}
    Idempotency-Key: {uuid, the same for every attempt of one delivery}
    Content-Type: application/json

    {
      "message_id": "{the idempotency key again, for providers that dedupe on the body}",
      "sender_key": "{SOTONG_NOTIFIER_ALIMTALK_SENDER_KEY: the KakaoTalk channel's profile}",
      "template_code": "SOTONG_RECEIVED",
      "template_version": 1,
      "recipient": "01012345678",
      "text": "[소통] 민원이 접수됐습니다.\\n접수번호: 251125-004217",
      "variables": {"receipt_number": "251125-004217"}
    }

and what it expects back: any 2xx when the provider accepted the message (a repeated
``Idempotency-Key`` answers 2xx again without sending twice); 408, 425, 429 (honouring
``Retry-After``) and 5xx when it may be tried again; any other 4xx with
``{"code": "...", "message": "..."}`` when it never will — e.g. ``NOT_KAKAO_USER``,
``BLOCKED`` (the resident blocked the channel), ``TEMPLATE_MISMATCH``. Those refusals are
what makes delivery fall back to SMS/LMS (대체발송). The provider's own SMS fallback is
not asked for: Sotong does it, so it is one recorded outcome of its own.

Before anything is sent, every ``#{variable}`` of the registered template must be filled
(a missing one is a TemplateError: no retry, no fallback) and the text must be within
AlimTalk's 1,000 characters; only a note is ever shortened to fit.
"""

from dataclasses import dataclass
from typing import ClassVar

from pydantic import SecretStr

from notifier.channel import Message, ProviderChannel, digits
from notifier.templates import placeholders
from services.errors import PermanentError

MAX_CHARS = 1000


@dataclass(kw_only=True)
class AlimTalkChannel(ProviderChannel):
    sender_key: SecretStr
    name: ClassVar[str] = "alimtalk"
    peer: ClassVar[str] = "alimtalk provider"

    def request(self, message: Message) -> dict[str, object]:
        """The body for one message; pure, so the contract is testable without a server."""
        if not message.phone:
            raise PermanentError("alimtalk needs a phone number")
        content = message.words()
        text, values = content.template.fit(content.values, limit=MAX_CHARS)
        used = placeholders(content.template.text)
        return {
            "message_id": message.idempotency_key,
            "sender_key": self.sender_key.get_secret_value(),
            "template_code": content.template.template_code,
            "template_version": content.template.version,
            "recipient": digits(message.phone),
            "text": text,
            "variables": {name: value for name, value in values.items() if name in used},
        }
