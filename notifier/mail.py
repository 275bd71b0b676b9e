"""E-mail over SMTP (aiosmtplib), for a resident who left only an address.

One plain-text UTF-8 message per delivery, from ``SOTONG_NOTIFIER_SMTP_SENDER``, with the
catalogue's subject and a ``Message-ID`` derived from the delivery id. SMTP has no
idempotency key: if the process dies after the server accepted the message and before
the ledger recorded it, the redelivery sends it again, and the same ``Message-ID`` is
what lets a mail client show it once. Every other repeat is prevented by the ledger.

Replies are classified by SMTP's own rule: 4xx (and timeouts, dropped connections) are
transient and retried; 5xx — an unknown mailbox, a refused sender — are permanent.
"""

import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import ClassVar, Literal

import aiosmtplib
from pydantic import SecretStr

from notifier.channel import Message
from services.errors import PermanentError, RetryableError

TlsMode = Literal["starttls", "tls", "none"]


@dataclass(kw_only=True)
class EmailChannel:
    host: str
    port: int
    sender: str
    tls: TlsMode
    username: str | None = None
    password: SecretStr | None = None
    timeout: float = 10.0
    name: ClassVar[str] = "email"

    def compose(self, message: Message) -> EmailMessage:
        if not message.email:
            raise PermanentError("email needs an address")
        content = message.words()
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.email
        mail["Subject"] = content.subject
        mail["Date"] = formatdate(localtime=False, usegmt=True)
        mail["Message-ID"] = f"<{message.idempotency_key}@sotong>"
        mail["X-Sotong-Delivery"] = message.idempotency_key
        mail.set_content(content.text, charset="utf-8")
        return mail

    async def deliver(self, message: Message) -> None:
        mail = self.compose(message)
        try:
            await aiosmtplib.send(
                mail,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password.get_secret_value() if self.password else None,
                use_tls=self.tls == "tls",
                start_tls=self.tls == "starttls",
                tls_context=ssl.create_default_context() if self.tls != "none" else None,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = sorted({refusal.code for refusal in exc.recipients})
            _raise_for(codes[-1] if codes else 550, "smtp refused the recipient")
        except aiosmtplib.SMTPResponseException as exc:
            _raise_for(exc.code, "smtp answered")
        except (aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPConnectError) as exc:
            raise RetryableError(f"smtp unreachable ({type(exc).__name__})") from None
        except (aiosmtplib.SMTPServerDisconnected, OSError) as exc:
            raise RetryableError(f"smtp connection lost ({type(exc).__name__})") from None
        except aiosmtplib.SMTPException as exc:
            raise PermanentError(f"smtp failed ({type(exc).__name__})") from None

    async def already_delivered(self, delivery_id: str) -> bool:
        return False  # SMTP cannot be asked; see the module docstring


def _raise_for(code: int, what: str) -> None:
    reason = f"{what} {code}"
    if 400 <= code < 500:
        raise RetryableError(reason)
    raise PermanentError(reason)
