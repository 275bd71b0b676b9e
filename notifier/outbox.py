"""The local outbox: the resident's inbox on one machine, one JSON line per message.

Someone running the platform locally follows it with ``tail -f``. Every line is
written whole, flushed and fsynced before ``deliver`` returns, so "delivered" means
on disk; a line left without its newline by a crash is cut off from the next one.
Only a masked contact is ever written (``010-****-5678``, ``h***@example.kr``). On one
machine, where no provider is configured, it is where every person's message goes (a
person with no contact at all gets nothing, as from a provider): the resident's to
``path``, staff messages (handler, supervisor) to ``staff_path`` beside it, so the
resident's file reads as what the resident receives. Webhooks never go here.
"""

import asyncio
import json
import os
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from notifier.channel import RESIDENT, Message
from schemas.common import mask_phone
from schemas.events import utcnow


def mask_email(email: str | None) -> str | None:
    """hong@example.kr → h***@example.kr: enough to tell two addresses apart."""
    if not email:
        return None
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


class OutboxChannel:
    name = "outbox"

    def __init__(
        self, path: Path, *, staff_path: Path | None = None, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.path = path
        self.staff_path = staff_path or path.with_name(f"{path.stem}-staff{path.suffix}")
        self.clock = clock

    async def deliver(self, message: Message) -> None:
        content = message.words()
        entry = {
            "delivery_id": message.delivery_id,
            "complaint_id": message.complaint_id,
            "receipt_number": message.receipt_number,
            "recipient": message.recipient,
            "to": mask_phone(message.phone) or mask_email(message.email),
            "channel": self.name,
            "template_code": content.template.template_code,
            "template_version": content.template.version,
            "state": message.state.value,
            "text": content.text,
            "sent_at": self.clock().isoformat(),
        }
        line = json.dumps(entry, ensure_ascii=False).encode() + b"\n"
        path = self.path if message.recipient == RESIDENT else self.staff_path
        await asyncio.to_thread(self._append, path, line)

    async def already_delivered(self, delivery_id: str) -> bool:
        return await asyncio.to_thread(self._contains, self.path, delivery_id) or (
            await asyncio.to_thread(self._contains, self.staff_path, delivery_id)
        )

    _appending = threading.Lock()
    """Concurrent deliveries (complaints of a batch run side by side) append one at a
    time: the check for a line a crash cut short must not see another's half-written one."""

    @classmethod
    def _append(cls, path: Path, line: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with cls._appending, open(path, "a+b", opener=_private) as f:
            if f.seek(0, os.SEEK_END) > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = b"\n" + line
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    @staticmethod
    def _contains(path: Path, delivery_id: str) -> bool:
        needle = json.dumps(delivery_id, ensure_ascii=False).encode()
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below; absent means nothing sent
        except FileNotFoundError:
            return False
        with f:
            for raw in f:
                if needle not in raw:
                    continue
                try:
                    entry = json.loads(raw)
                except ValueError:  # cut short by a crash: that message never went out whole
                    continue
                if isinstance(entry, dict) and entry.get("delivery_id") == delivery_id:
                    return True
        return False
