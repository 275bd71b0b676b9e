"""(e) Isolation: every key (each department's, a staff key, none, a wrong one, one with a
trailing space) against every department and search endpoint and the command API,
including the old department right after a transfer; a duplicate ``channel_ref`` from a
second client; a resident command spoofed straight onto ``complaint.commands``.

Every 2xx a key should not get is reported (bar: none). A department's command on a
complaint it is not responsible for is accepted at the door (202) and refused by
routing: what counts there is whether the complaint's state moved.
"""

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from intake.settings import IntakeSettings
from schemas import topics
from schemas.commands import WithdrawComplaint
from sotong.resilience.report import Scenario, is_error_shape
from sotong.resilience.stack import Stack
from sotong.resilience.traffic import Kafka, filing, local_id


@dataclass(frozen=True)
class Key:
    label: str
    value: str | None
    department: str | None = None
    staff: bool = False
    raw: bool = False
    """Sent byte for byte over a socket: httpx refuses a header value ending in a space."""


def keys(stack: Stack, responsible: str) -> list[Key]:
    found = [Key(code, key, department=code) for code, key in sorted(stack.department_keys.items())]
    return [
        *found,
        Key("staff", stack.staff_key, staff=True),
        Key("none", None),
        Key("wrong", "not-a-key-" + "x" * 24),
        # HTTP strips a header value's surrounding spaces (RFC 9110 §5.5) before the
        # application sees it: a key with a trailing space is that department's key, and
        # must get what that department gets and nothing more
        Key(
            "trailing-space",
            stack.department_keys[responsible] + " ",
            department=responsible,
            raw=True,
        ),
        Key("staff-trailing-space", stack.staff_key + " ", staff=True, raw=True),
        Key("trailing-space-inside", stack.department_keys[responsible][:-1] + " ", raw=True),
    ]


async def raw_request(method: str, url: str, headers: Mapping[str, str], body: Any = None) -> int:
    """One HTTP/1.1 request written by hand; the status code answered."""
    parts = urlsplit(url)
    content = b"" if body is None else json.dumps(body).encode()
    lines = [
        f"{method} {parts.path}{'?' + parts.query if parts.query else ''} HTTP/1.1",
        f"Host: {parts.hostname}:{parts.port}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(content)}"]
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + content)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 30)
    finally:
        writer.close()
    return int(status_line.split()[1])


def headers(key: Key) -> dict[str, str]:
    return {} if key.value is None else {"X-Api-Key": key.value}


async def staff_view(http: httpx.AsyncClient, stack: Stack, complaint_id: str) -> dict[str, Any]:
    response = await http.get(
        f"{stack.url('tracker')}/v1/staff/complaints/{complaint_id}",
        headers={"X-Api-Key": stack.staff_key},
    )
    return dict(response.json()) if response.status_code == 200 else {}


def department_code(view: Mapping[str, Any]) -> str | None:
    department = view.get("department")
    if isinstance(department, dict):
        return str(department.get("code")) if department.get("code") else None
    return str(department) if department else None


async def wait_for(
    http: httpx.AsyncClient, stack: Stack, complaint_id: str, *, within: float = 90, **want: str
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        view = await staff_view(http, stack, complaint_id)
        if view and all(
            (department_code(view) if k == "department" else view.get(k)) == v
            for k, v in want.items()
        ):
            return view
        await asyncio.sleep(0.5)
    raise TimeoutError(f"{complaint_id} never reached {want}; last seen {view}")


async def file_and_assign_body(
    http: httpx.AsyncClient,
    stack: Stack,
    body: dict[str, Any],
    *,
    already: httpx.Response | None = None,
) -> tuple[str, str, dict[str, Any]]:
    """File (unless ``already`` filed) as one resident through the portal's credential, and
    wait until a handler is assigned: the complaint id, its department and the answer."""
    response = already or await http.post(
        f"{stack.url('intake')}/v1/complaints",
        json=body,
        headers=stack.as_resident(f"isolation-{local_id()}"),
    )
    response.raise_for_status()
    filed = dict(response.json())
    view = await wait_for(http, stack, filed["complaint_id"], state="handler_assigned")
    code = department_code(view)
    if not code:
        raise RuntimeError(f"{filed['complaint_id']} has no department: {view}")
    return filed["complaint_id"], code, filed


async def refused_burst(http: httpx.AsyncClient, stack: Stack) -> dict[str, Any]:
    """Filings from one client address until intake says 429 (at most one more than its
    per-minute limit, spoofing a new X-End-User each time, which without a credential
    must not help), then one from another client (a resident the portal names): that one
    is still filed."""
    intake = stack.url("intake")
    default = IntakeSettings.model_fields["filings_per_minute"].default
    per_minute = int(stack.env.get("SOTONG_INTAKE_FILINGS_PER_MINUTE") or default)
    statuses: list[int] = []
    refused: dict[str, Any] = {}
    for i in range(per_minute + 1):
        response = await http.post(
            f"{intake}/v1/complaints",
            json=filing(9000 + i),
            headers={"X-End-User": f"spoofed-{i}"},
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            refused = {
                "retry_after": response.headers.get("Retry-After"),
                "in_error_shape": is_error_shape(
                    429, response.content, response.headers.get("content-type", "")
                ),
            }
            break
    other = await http.post(
        f"{intake}/v1/complaints", json=filing(9100), headers=stack.as_resident("another-client")
    )
    ok = bool(refused) and bool(refused["retry_after"]) and bool(refused["in_error_shape"])
    return {"statuses": statuses, "refused": ok, **refused, "other_client": other.status_code}


async def file_and_assign(
    http: httpx.AsyncClient, stack: Stack, i: int
) -> tuple[str, str, dict[str, Any]]:
    return await file_and_assign_body(http, stack, filing(i))


async def run(stack: Stack, scenario: Scenario) -> None:
    unexpected: list[str] = []
    refused: list[str] = []
    requests = 0
    tracker, intake = stack.url("tracker"), stack.url("intake")
    async with httpx.AsyncClient(timeout=30) as http:
        a, dept, _ = await file_and_assign(http, stack, 1)
        b, dept_b, _ = await file_and_assign(http, stack, 2)
        matrix = keys(stack, dept)
        codes = sorted(stack.department_keys)

        async def probe(key: Key, method: str, url: str, allowed: bool, **kw: Any) -> int:
            nonlocal requests
            requests += 1
            if key.raw:
                status = await raw_request(method, url, headers(key), kw.get("json"))
            else:
                status = (await http.request(method, url, headers=headers(key), **kw)).status_code
            what = f"{key.label} {method} {url.removeprefix(tracker).removeprefix(intake)}"
            if 200 <= status < 300 and not allowed:
                unexpected.append(f"{what} → {status}")
            elif allowed and not 200 <= status < 300:
                refused.append(f"{what} → {status}")
            return status

        for key in matrix:
            for code in codes:
                await probe(
                    key, "GET", f"{tracker}/v1/departments/{code}/queue", key.department == code
                )
                await probe(
                    key,
                    "GET",
                    f"{tracker}/v1/departments/{code}/complaints/{a}",
                    key.department == code == dept,
                )
            await probe(key, "GET", f"{tracker}/v1/search", key.staff or key.department is not None)
            for code in (dept, dept_b):
                await probe(
                    key,
                    "GET",
                    f"{tracker}/v1/search?department={code}",
                    key.staff or key.department == code,
                )
            await probe(
                key,
                "GET",
                f"{tracker}/v1/staff/complaints/{a}",
                key.staff or key.department == dept,
            )
            await probe(key, "GET", f"{tracker}/v1/stats", key.staff)
            # a search answered to a department must hold only its own complaints
            if key.department is not None and not key.raw:
                response = await http.get(
                    f"{tracker}/v1/search", headers=headers(key), params={"limit": 100}
                )
                for hit in response.json().get("items", []) if response.is_success else []:
                    if department_code(hit) not in (key.department, None):
                        other = f"{hit.get('complaint_id')} of {department_code(hit)}"
                        unexpected.append(f"{key.label} search shows {other}")
        # the command API: a key that is no department's is refused at the door
        for key in matrix:
            if key.department is None:
                await probe(
                    key,
                    "POST",
                    f"{intake}/v1/complaints/{b}/commands",
                    False,
                    json={"action": "start_site_check"},
                )
        # every other department acting on b: accepted at the door, refused by routing
        for key in matrix:
            if key.department not in (None, dept_b):
                await probe(
                    key,
                    "POST",
                    f"{intake}/v1/complaints/{b}/commands",
                    True,
                    json={"action": "start_site_check", "note": "isolation probe"},
                )
        await asyncio.sleep(5)
        view_b = await staff_view(http, stack, b)
        if view_b.get("state") != "handler_assigned":
            unexpected.append(f"another department's command moved {b} to {view_b.get('state')}")

        # a transfer: the old department loses the complaint at once
        target = next(code for code in codes if code != dept)
        await probe(
            Key(dept, stack.department_keys[dept], department=dept),
            "POST",
            f"{intake}/v1/complaints/{a}/commands",
            True,
            json={"action": "transfer", "to_department": target, "note": "이송 시험"},
        )
        await wait_for(http, stack, a, department=target)
        old = Key(f"{dept} (after transfer)", stack.department_keys[dept], department=dept)
        await probe(old, "GET", f"{tracker}/v1/departments/{dept}/complaints/{a}", False)
        await probe(old, "GET", f"{tracker}/v1/staff/complaints/{a}", False)
        new = Key(f"{target} (after transfer)", stack.department_keys[target], department=target)
        await probe(new, "GET", f"{tracker}/v1/departments/{target}/complaints/{a}", True)
        await probe(
            old,
            "POST",
            f"{intake}/v1/complaints/{a}/commands",
            True,
            json={"action": "start_site_check", "note": "old department"},
        )
        await asyncio.sleep(3)
        view_a = await staff_view(http, stack, a)
        if view_a.get("state") == "site_check":
            unexpected.append(f"the old department's command moved {a} after its transfer")

        # a duplicate channel_ref from another client
        ref = f"CC-{local_id()}"
        first = await http.post(
            f"{intake}/v1/complaints", json=filing(3, channel_ref=ref, channel="call_center")
        )
        second = await http.post(
            f"{intake}/v1/complaints",
            json=filing(4, channel_ref=ref, channel="call_center"),
            headers={"User-Agent": "another-client"},
        )
        handed = [name for name in ("tracking_token", "resident_token") if second.json().get(name)]
        scenario.figures["duplicate_channel_ref"] = {
            "first": first.status_code,
            "second": second.status_code,
            "tokens_in_second_answer": handed,
        }

        # a resident command spoofed onto the topic, no token, no intake
        c, _, _ = await file_and_assign(http, stack, 5)
        spoof = WithdrawComplaint(complaint_id=c, actor="resident", note="spoofed")
        async with Kafka(stack.bootstrap) as kafka:
            await kafka.raw(
                topics.COMMANDS,
                spoof.model_dump_json().encode(),
                c.encode(),
                (("content-type", b"application/json"),),
            )
        spoofed_state = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            spoofed_state = (await staff_view(http, stack, c)).get("state")
            if spoofed_state == "withdrawn":
                break
            await asyncio.sleep(0.5)
        scenario.figures["spoofed_withdrawal_state"] = spoofed_state

        burst = await refused_burst(http, stack)
        scenario.figures["burst_from_one_client"] = burst

    scenario.figures |= {
        "requests": requests,
        "keys": len(matrix),
        "legitimate_refused": len(refused),
    }
    scenario.check("unexpected 2xx", len(unexpected), evidence=unexpected)
    scenario.check("legitimate requests refused", len(refused), evidence=refused)
    scenario.check(
        "tokens handed to a second client for a duplicate channel_ref",
        len(handed),
        evidence=[f"{ref}: {', '.join(handed)} in the 200 answer"] if handed else [],
    )
    scenario.check(
        "a burst from one client not refused (429 with Retry-After, in the error shape)",
        int(not burst["refused"]),
        evidence=[f"statuses {burst['statuses']}"] if not burst["refused"] else [],
    )
    scenario.check(
        "another client refused while one client's burst is limited",
        int(burst["other_client"] not in (200, 201)),
        evidence=[f"another client answered {burst['other_client']}"]
        if burst["other_client"] not in (200, 201)
        else [],
    )
    scenario.check(
        "spoofed resident commands obeyed",
        int(spoofed_state == "withdrawn"),
        evidence=[f"{c} withdrawn by a record nobody authenticated"]
        if spoofed_state == "withdrawn"
        else [],
    )
