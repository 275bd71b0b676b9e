"""Commands signed by intake, verified by routing: a command anyone else wrote to the
topic — unsigned, signed with another key, or changed after signing — is dead-lettered
with the reason and changes nothing (issue 11 §2)."""

from typing import Any

import pytest
from faststream.message import StreamMessage
from prometheus_client import CollectorRegistry, Histogram
from pydantic import SecretStr, ValidationError

from routing.handlers import Consumer
from schemas import topics
from schemas.commands import (
    COMMAND_ADAPTER,
    RESIDENT,
    StartSiteCheck,
    WithdrawComplaint,
)
from services.settings import SigningSettings
from services.signing import (
    CommandSigner,
    CommandVerifier,
    UnverifiedCommand,
    signing_publish,
)
from tests.fakes.routing import RecordingPublish
from tests.unit.test_routing_batches import Record, at
from tests.unit.test_routing_handlers import DEPT, harness

KEYS = {"k1": SecretStr("a" * 32)}
OTHER = {"k1": SecretStr("b" * 32)}


def test_a_signed_command_verifies_and_survives_the_wire() -> None:
    signed = CommandSigner(KEYS).sign(StartSiteCheck(actor=DEPT, complaint_id="c1", note="가자"))
    assert signed.signature.startswith("k1:")
    read_back = COMMAND_ADAPTER.validate_json(signed.model_dump_json())
    assert CommandVerifier(KEYS).refusal(read_back) is None


def test_what_is_refused_and_why() -> None:
    verifier = CommandVerifier(KEYS)
    command = WithdrawComplaint(actor=RESIDENT, complaint_id="c1")
    assert "unsigned" in (verifier.refusal(command) or "")
    foreign = CommandSigner(OTHER).sign(command)
    assert "does not match" in (verifier.refusal(foreign) or "")
    unknown = CommandSigner({"k9": SecretStr("a" * 32)}).sign(command)
    assert "unknown key id 'k9'" in (verifier.refusal(unknown) or "")
    signed = CommandSigner(KEYS).sign(StartSiteCheck(actor="roads", complaint_id="c1"))
    as_another = signed.model_copy(update={"actor": "parks"})  # the department changed
    assert "does not match" in (verifier.refusal(as_another) or "")


def test_keys_rotate_the_first_signs_any_verifies() -> None:
    rotating = {"new": SecretStr("n" * 32), "old": SecretStr("a" * 32)}
    old = CommandSigner({"old": SecretStr("a" * 32)}).sign(
        WithdrawComplaint(actor=RESIDENT, complaint_id="c1")
    )
    assert CommandVerifier(rotating).refusal(old) is None
    assert CommandSigner(rotating).key_id == "new"


def test_weak_or_malformed_keys_are_refused_naming_the_key() -> None:
    with pytest.raises(ValidationError, match="'short': at least 32"):
        SigningSettings(keys={"short": SecretStr("x")})
    with pytest.raises(ValidationError, match="without ':'"):
        SigningSettings(keys={"a:b": SecretStr("x" * 32)})


async def test_the_publish_wrapper_signs_commands_only() -> None:
    sent = RecordingPublish()
    publish = signing_publish(sent, CommandSigner(KEYS))
    await publish(topics.COMMANDS, StartSiteCheck(actor=DEPT, complaint_id="c1"))
    await publish(topics.FILED, at("c1"))
    command, filed = (e for _, e in sent.sent)
    assert CommandVerifier(KEYS).refusal(command) is None
    assert not hasattr(filed, "signature")
    assert signing_publish(sent, None) is sent


async def test_routing_dead_letters_an_unverified_command_and_acts_on_a_signed_one() -> None:
    h = harness()
    await h.routing.on_filed(at("a"))
    letters: list[BaseException] = []

    async def dead_letter(message: StreamMessage[Any], exc: BaseException, attempts: int) -> None:
        letters.append(exc)

    consumer = Consumer(
        routing=h.routing,
        adapter=COMMAND_ADAPTER,
        dead_letter=dead_letter,
        batch_records=Histogram("batch", "records", registry=CollectorRegistry()),
        verifier=CommandVerifier(KEYS),
    )
    spoofed = WithdrawComplaint(actor=RESIDENT, complaint_id="a")
    signed = CommandSigner(KEYS).sign(StartSiteCheck(actor=DEPT, complaint_id="a"))
    await consumer.handle(
        [
            Record(topics.COMMANDS, spoofed.model_dump_json().encode(), key=b"a", offset=1),
            Record(topics.COMMANDS, signed.model_dump_json().encode(), key=b"a", offset=2),
        ]
    )
    assert len(letters) == 1
    assert isinstance(letters[0], UnverifiedCommand)
    assert "only intake may publish commands" in str(letters[0])
    assert [e.to_state.value for e in h.sent.lifecycle("a")][-1] == "site_check"
    assert "withdrawn" not in {e.to_state.value for e in h.sent.lifecycle("a")}
