"""(d) Fuzzing: ``schemathesis`` generates requests from every service's OpenAPI document
(served at /openapi.json), sent in turn with a department key, the staff key and none;
then hand-made probes: an oversized body and header, NFD Hangul, zero-width-only,
joiner-only and bidirectional-control text, an emoji sequence, NUL.

Bars: no 5xx anywhere; every JSON API's 4xx in the error shape
(``{"error": {"code", "message"}}``); no connection reset or timeout; each probe answered
with its one status — an oversized body 413 and an oversized header 431, read by the
client although it was still sending; invisible-only or control text 422; NFD Hangul and
emoji with their joiners 201.
"""

import asyncio
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis.core.result import Err

from sotong.resilience.report import Scenario, is_error_shape
from sotong.resilience.stack import Stack
from sotong.resilience.traffic import filing

JSON_APIS = ("intake", "routing", "tracker", "notifier")
"""The portal answers pages: its errors are HTML by design, so only its 5xx count."""
STREAMS = ("/events", "/live")
"""Server-Sent Events never end: not fuzzed (their auth is covered by the isolation matrix)."""


@dataclass
class Tally:
    requests: int = 0
    per_endpoint: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    off_shape: list[str] = field(default_factory=list)
    transport_errors: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)

    def record(
        self, service: str, endpoint: str, status: int, body: bytes, content_type: str
    ) -> None:
        self.requests += 1
        self.per_endpoint[f"{service} {endpoint}"] += 1
        self.statuses[status] += 1
        if status >= 500:
            self.server_errors.append(f"{service} {endpoint} → {status}: {body[:200]!r}")
        elif service in JSON_APIS and not is_error_shape(status, body, content_type):
            self.off_shape.append(f"{service} {endpoint} → {status} {content_type}: {body[:120]!r}")


def sender(
    service: str,
    endpoint: str,
    operation: Any,
    base_url: str,
    auth: Sequence[dict[str, str]],
    examples: int,
    tally: Tally,
    turn: list[int],
    round_: int = 0,
) -> Callable[[], None]:
    """A hypothesis test sending ``examples`` generated requests for one operation,
    with the keys in ``auth`` in turn; each round has its own seed, so a run repeats."""

    @seed(round_)
    @given(case=operation.as_strategy())
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def send(case: Any) -> None:
        headers = dict(auth[turn[0] % len(auth)])
        turn[0] += 1
        try:
            answer = case.call(base_url=base_url, headers=headers, timeout=15)
        except Exception as exc:
            tally.transport_errors.append(f"{service} {endpoint}: {type(exc).__name__}")
            return
        tally.record(
            service,
            endpoint,
            answer.status_code,
            answer.content,
            ";".join(answer.headers.get("content-type") or ()),
        )

    result: Callable[[], None] = send
    return result


def fuzz_service(
    service: str,
    base_url: str,
    auth: Sequence[dict[str, str]],
    per_operation: int,
    tally: Tally,
    round_: int = 0,
) -> str | None:
    """Generate and send; None, or why this service could not be fuzzed."""
    response = httpx.get(f"{base_url}/openapi.json", timeout=10)
    if response.status_code != 200:
        return f"/openapi.json answered {response.status_code}"
    schema = schemathesis.openapi.from_dict(response.json())
    turn = [0]
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            tally.transport_errors.append(f"{service}: unusable operation: {result.err()}")
            continue
        operation = result.ok()
        endpoint = f"{operation.method.upper()} {operation.path}"
        if operation.path.endswith(STREAMS):
            continue

        send = sender(
            service, endpoint, operation, base_url, auth, per_operation, tally, turn, round_
        )
        send()
    return None


MAX_ROUNDS = 10

NFD = unicodedata.normalize("NFD", "가로등이 꺼져 있어요")


OVERSIZED_HEADER = 70_000
"""Bytes of one header: far over the servers' bound on a request head (16 KiB)."""


@dataclass(frozen=True)
class Probe:
    """A hand-made request to intake and the one status it must be answered with."""

    label: str
    path: str
    request: dict[str, Any]
    expected: int
    times: int = 1
    """Sent this often: a reset instead of the answer is a race, lost now and then."""


def probes(max_body: int) -> list[Probe]:
    """The hand-made requests: the edges of the HTTP server and of free text."""
    ok = filing(7)
    return [
        # the client must read the 413, though it is still sending when the server refuses
        Probe(
            "oversized body",
            "/v1/complaints",
            {
                "content": b'{"body": "' + b"a" * (max_body + 10) + b'"}',
                "headers": {"content-type": "application/json"},
            },
            413,
            times=5,
        ),
        Probe(
            "oversized body, 4x",
            "/v1/complaints",
            {
                "content": b'{"body": "' + b"a" * (4 * max_body) + b'"}',
                "headers": {"content-type": "application/json"},
            },
            413,
            times=5,
        ),
        Probe(
            "oversized header",
            "/v1/complaints",
            {"json": ok, "headers": {"X-Filler": "a" * OVERSIZED_HEADER}},
            431,
            times=5,
        ),
        Probe("NFD Hangul", "/v1/complaints", {"json": ok | {"body": NFD}}, 201),
        Probe(
            "zero-width only", "/v1/complaints", {"json": ok | {"body": "\u200b\u2060\ufeff"}}, 422
        ),
        Probe("joiners only", "/v1/complaints", {"json": ok | {"body": "\u200c\u200d\u200b"}}, 422),
        Probe(
            "emoji with joiners",
            "/v1/complaints",
            {"json": ok | {"body": "놀이터 그네 \U0001f468\u200d\U0001f469\u200d\U0001f467"}},
            201,
        ),
        Probe(
            "bidi control",
            "/v1/complaints",
            {"json": ok | {"body": "가로등 \u202e고장\u202c"}},
            422,
        ),
        Probe("NUL in body", "/v1/complaints", {"json": ok | {"body": "가로등\u0000고장"}}, 422),
        Probe(
            "NUL in name",
            "/v1/complaints",
            {"json": ok | {"resident": {"name": "홍\u0000길동"}}},
            422,
        ),
    ]


async def run(stack: Stack, scenario: Scenario, *, requests: int) -> None:
    any_department = next(iter(sorted(stack.department_keys.values())))
    auth = [{"X-Api-Key": any_department}, {"X-Api-Key": stack.staff_key}, {}]
    services = list(stack.services)
    tally = Tally()
    unfuzzed: dict[str, str] = {}
    # about requests/len(services) per service, spread over its operations
    counts = {}
    async with httpx.AsyncClient(timeout=10) as http:
        for name in services:
            doc = (await http.get(f"{stack.url(name)}/openapi.json")).json()
            counts[name] = max(
                1,
                sum(
                    1
                    for path, item in doc.get("paths", {}).items()
                    if not path.endswith(STREAMS)
                    for method in item
                    if method in ("get", "post", "put", "patch", "delete")
                ),
            )
    total_ops = sum(counts.values())
    per_operation = max(3, -(-requests // total_ops))
    # hypothesis stops early on an operation with few distinct requests (one without
    # parameters has one): rounds with new seeds until the target is reached
    for round_ in range(MAX_ROUNDS):
        before = tally.requests
        for name in services:
            why = await asyncio.to_thread(
                fuzz_service, name, stack.url(name), auth, per_operation, tally, round_
            )
            if why:
                unfuzzed[name] = why
        if tally.requests >= requests or tally.requests == before:
            break
    answered_wrongly: list[str] = []
    max_body = int(stack.env.get("SOTONG_INTAKE_MAX_REQUEST_BYTES", 1024 * 1024))
    async with httpx.AsyncClient(timeout=30) as http:
        for n, probe in enumerate(p for p in probes(max_body) for _ in range(p.times)):
            # each probe as a resident of its own: what answers is the rule the probe is
            # about, not the per-client limit the fuzzing above used up
            resident = stack.as_resident(f"fuzz-probe-{n}")
            request = probe.request | {
                "headers": resident | dict(probe.request.get("headers") or {})
            }
            try:
                answer = await http.post(f"{stack.url('intake')}{probe.path}", **request)
            except httpx.HTTPError as exc:
                lost = f"probe {probe.label} → {type(exc).__name__} (no answer read)"
                tally.transport_errors.append(lost)
                continue
            tally.record(
                "intake",
                f"probe: {probe.label}",
                answer.status_code,
                answer.content,
                answer.headers.get("content-type", ""),
            )
            if answer.status_code != probe.expected:
                answered_wrongly.append(
                    f"{probe.label} → {answer.status_code}, not {probe.expected}"
                )
        # NUL and control characters in a query string
        for q in ("\u0000", "가로등\u202e", "\u200b", NFD):
            answer = await http.get(
                f"{stack.url('tracker')}/v1/search",
                params={"q": q},
                headers={"X-Api-Key": stack.staff_key},
            )
            tally.record(
                "tracker",
                "probe: search q",
                answer.status_code,
                answer.content,
                answer.headers.get("content-type", ""),
            )
    scenario.parameters |= {
        "requested": requests,
        "per_operation": per_operation,
        "operations": counts,
    }
    scenario.figures |= {
        "requests": tally.requests,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "per_endpoint": dict(tally.per_endpoint),
        "unfuzzed": unfuzzed,
    }
    scenario.check(
        "generated requests short of the target",
        max(0, requests - tally.requests),
        evidence=[f"{tally.requests} sent of {requests}"],
    )
    scenario.check("5xx answers", len(tally.server_errors), evidence=tally.server_errors)
    scenario.check("errors outside the error shape", len(tally.off_shape), evidence=tally.off_shape)
    scenario.check(
        "transport errors (connection reset, timeout)",
        len(tally.transport_errors),
        evidence=tally.transport_errors,
    )
    scenario.check(
        "services without an OpenAPI document",
        len(unfuzzed),
        evidence=[f"{k}: {v}" for k, v in unfuzzed.items()],
    )
    scenario.check(
        "edge and text probes answered wrongly", len(answered_wrongly), evidence=answered_wrongly
    )
