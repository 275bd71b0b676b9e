"""Commands signed by intake, verified by routing (issue 11 §2).

intake is the only service that may put commands on ``complaint.commands``: it knows the
department from the API key and the resident from the tracking token. Anything else that
can write to the topic (a department system with broker credentials, a mistaken script)
could otherwise act as any department or withdraw anyone's complaint. intake signs each
command with HMAC-SHA256 over its canonical JSON without the signature; routing refuses
(dead-letters, with the reason) a command without a valid signature when it has keys.

The key travels in no message; only its id does (``"<key id>:<hex>"``), so keys rotate:
give routing the new key beside the old, then intake the new one first, then drop the old.
Broker ACLs are the other half: only intake's principal may write the topic (README).
"""

import hashlib
import hmac
import logging
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, SecretStr

from services.broker import KeyedEvent
from services.runtime import Publish
from services.settings import SigningSettings

log = logging.getLogger("sotong.signing")


def canonical(command: BaseModel) -> bytes:
    """What is signed: the command's JSON without its signature, as pydantic writes it
    (the same model on both sides writes the same bytes)."""
    return command.model_dump_json(exclude={"signature"}).encode()


def _mac(secret: SecretStr, data: bytes) -> str:
    return hmac.new(secret.get_secret_value().encode(), data, hashlib.sha256).hexdigest()


class CommandSigner:
    def __init__(self, keys: Mapping[str, SecretStr]) -> None:
        if not keys:
            raise ValueError("a signer needs a key")
        self.key_id, self.secret = next(iter(keys.items()))

    def sign(self, command: BaseModel) -> Any:
        """The command with its signature set."""
        return command.model_copy(
            update={"signature": f"{self.key_id}:{_mac(self.secret, canonical(command))}"}
        )


class CommandVerifier:
    def __init__(self, keys: Mapping[str, SecretStr]) -> None:
        self.keys = dict(keys)

    def refusal(self, command: BaseModel) -> str | None:
        """Why the command is not to be trusted, or None if it carries a valid signature."""
        signature = getattr(command, "signature", None)
        if not signature:
            return "unsigned command: only intake may publish commands"
        key_id, _, mac = str(signature).partition(":")
        secret = self.keys.get(key_id)
        if secret is None:
            return f"command signed with an unknown key id {key_id!r}"
        if not hmac.compare_digest(mac, _mac(secret, canonical(command))):
            return "command signature does not match its content"
        return None


class UnverifiedCommand(Exception):
    """A command routing will not act on: its reason goes on the dead letter."""


def signing_publish(publish: Publish, signer: CommandSigner | None) -> Publish:
    """``publish`` with every command signed first (events without a ``signature`` field
    pass as they are); without a signer, ``publish`` itself."""
    if signer is None:
        return publish

    async def signed(topic: str, event: KeyedEvent, correlation_id: str | None = None) -> None:
        if isinstance(event, BaseModel) and "signature" in type(event).model_fields:
            event = signer.sign(event)
        await publish(topic, event, correlation_id)

    return signed


def signer_from(settings: SigningSettings) -> CommandSigner | None:
    if not settings.keys:
        log.warning(
            "no command signing keys (SOTONG_COMMAND_SIGNING_KEYS): commands go out unsigned, "
            "and a routing that checks signatures will refuse them"
        )
        return None
    return CommandSigner(settings.keys)


def verifier_from(settings: SigningSettings) -> CommandVerifier | None:
    if not settings.keys:
        log.warning(
            "no command signing keys (SOTONG_COMMAND_SIGNING_KEYS): commands are not "
            "verified; anything that can write complaint.commands can act as any department"
        )
        return None
    return CommandVerifier(settings.keys)
