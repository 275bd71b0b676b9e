"""A service told to drain (SIGUSR1, sent by ``sotong up`` on Ctrl-C) refuses new work
over HTTP with 503 and ``Retry-After`` while its consumers finish what is on the broker.

Reads still answer, so a resident can follow a complaint while the platform stops. The
gate is plain ASGI: it sees the lifespan start (to install the signal handler on the
running loop) and every request, and holds no state but the flag.
"""

import asyncio
import json
import logging
import signal
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from services.http import error_body

log = logging.getLogger("sotong.draining")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DRAIN_SIGNAL = signal.SIGUSR1
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class DrainGate:
    """ASGI middleware: once draining, requests that would create work get 503."""

    def __init__(self, app: ASGIApp, *, retry_after_seconds: int = 30) -> None:
        self.app = app
        self.retry_after_seconds = retry_after_seconds
        self.draining = False

    def drain(self) -> None:
        if not self.draining:
            log.warning("draining: new filings and commands are refused with 503")
        self.draining = True

    def _install_signal(self) -> None:
        try:
            asyncio.get_running_loop().add_signal_handler(DRAIN_SIGNAL, self.drain)
        except (RuntimeError, ValueError, NotImplementedError):
            # not the main thread (an in-process test client): only drain() drains
            log.debug("drain signal not installed: not on the main thread's loop")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            self._install_signal()
        elif scope["type"] == "http" and self.draining and scope["method"] in WRITES:
            await self._refuse(send)
            return
        await self.app(scope, receive, send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            error_body(
                "draining",
                "the platform is stopping and accepts nothing new; "
                f"try again in {self.retry_after_seconds} seconds",
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(self.retry_after_seconds).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
