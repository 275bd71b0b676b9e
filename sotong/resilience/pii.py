"""(f) Personal data: unique canaries in a resident's name, phone, e-mail and address, a
주민등록번호 in the body and a phone number in a department's note; then every log, every
topic from the earliest offset (dead letters decoded), the outbox files, the webhook
bodies, /metrics, search results and statistics are scanned, into a canary × place table.

Bars: no canary in logs, metrics, webhooks, search results or statistics, and no
contact on the department-shared lifecycle topic. Free text (the 주민등록번호 in the
body, the phone in the note) reaching department-shared places is issue 11 §4, being
worked on: reported as a known gap until it is masked.
"""

import asyncio
import secrets

import httpx

from schemas import topics
from sotong.resilience.isolation import file_and_assign_body
from sotong.resilience.report import Canary, Scenario, canary_table, leaks
from sotong.resilience.stack import Stack
from sotong.resilience.traffic import read_topics

CONTACT = ("name", "phone", "email", "address")
FREE_TEXT = ("rrn_in_body", "phone_in_note")


def resident_registration_number() -> str:
    """A 주민등록번호 with a valid check digit, born in a year no resident here was."""
    digits = [
        int(d)
        for d in f"0{secrets.randbelow(9) + 1}0{secrets.randbelow(9) + 1}1{secrets.randbelow(9)}"
    ]
    digits += [secrets.choice((1, 2, 3, 4))] + [secrets.randbelow(10) for _ in range(5)]
    weights = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
    check = (11 - sum(d * w for d, w in zip(digits, weights, strict=True)) % 11) % 10
    text = "".join(map(str, digits)) + str(check)
    return f"{text[:6]}-{text[6:]}"


def canaries() -> list[Canary]:
    tag = secrets.token_hex(3)
    return [
        Canary("name", f"카나리{tag}"),
        Canary("phone", f"010-7{secrets.randbelow(900) + 100}-{secrets.randbelow(9000) + 1000}"),
        Canary("email", f"canary{tag}@example.kr"),
        Canary("address", f"인천 서구 카나리아로{secrets.randbelow(900) + 100}번길 {tag}"),
        Canary("rrn_in_body", resident_registration_number()),
        Canary(
            "phone_in_note", f"010-6{secrets.randbelow(900) + 100}-{secrets.randbelow(9000) + 1000}"
        ),
    ]


async def run(stack: Stack, scenario: Scenario, *, settle: float) -> None:
    planted = canaries()
    value = {c.field: c.value for c in planted}
    body = {
        "channel": "web",
        "title": "가로등 고장",
        "body": f"공원 가로등이 며칠째 꺼져 있어요. 제 주민번호는 {value['rrn_in_body']} 입니다",
        "resident": {"name": value["name"], "phone": value["phone"], "email": value["email"]},
        "location": {"address": value["address"], "dong": "청라1동"},
    }
    places: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=30) as http:
        intake, tracker = stack.url("intake"), stack.url("tracker")
        first = await http.post(
            f"{intake}/v1/complaints", json=body, headers=stack.as_resident("pii-canary")
        )
        scenario.figures["rrn_at_intake"] = (
            "refused" if first.status_code == 422 else f"accepted ({first.status_code})"
        )
        if first.status_code == 422:
            body["body"] = "공원 가로등이 며칠째 꺼져 있어요"
        complaint_id, department, _ = await file_and_assign_body(
            http, stack, body, already=first if first.status_code in (200, 201) else None
        )
        key = {"X-Api-Key": stack.department_keys[department]}
        response = await http.post(
            f"{intake}/v1/complaints/{complaint_id}/commands",
            json={
                "action": "start_site_check",
                "note": f"주민 연락처 {value['phone_in_note']} 로 방문 예정",
            },
            headers=key,
        )
        response.raise_for_status()
        await asyncio.sleep(settle)
        staff = {"X-Api-Key": stack.staff_key}
        searches = []
        asked: tuple[tuple[dict[str, str | int], dict[str, str]], ...] = (
            ({"q": "가로등"}, staff),
            ({"q": "가로등"}, key),
            ({"limit": 100}, staff),
            ({"dong": "청라1동", "limit": 100}, key),
        )
        for params, headers in asked:
            searches.append(
                (await http.get(f"{tracker}/v1/search", params=params, headers=headers)).text
            )
        places["search"] = "\n".join(searches)
        places["stats"] = (await http.get(f"{tracker}/v1/stats", headers=staff)).text
        places["staff-view"] = (
            await http.get(f"{tracker}/v1/staff/complaints/{complaint_id}", headers=staff)
        ).text
        for name in stack.services:
            places[f"metrics:{name}"] = (await http.get(f"{stack.url(name)}/metrics")).text
    for path in stack.log_files():
        places[f"log:{path.name}"] = path.read_text(encoding="utf-8", errors="replace")
    for record in await read_topics(stack.bootstrap, list(topics.ALL)):
        place = f"topic:{record.topic}"
        places[place] = places.get(place, "") + "\n" + record.text()
    for path in stack.outbox_files():
        places[f"outbox:{path.name}"] = path.read_text(encoding="utf-8", errors="replace")
    for received in stack.webhooks.bodies():
        place = f"webhook:{received.path.strip('/')}"
        places[place] = places.get(place, "") + "\n" + received.body.decode("utf-8", "replace")
    table = canary_table(planted, places)
    scenario.parameters["canaries"] = {c.field: _shape(c.value) for c in planted}
    scenario.figures["table"] = table
    shared = ("log:", "metrics:", "webhook:", "search", "stats", f"topic:{topics.LIFECYCLE}")
    everywhere_banned = ("log:", "metrics:", "stats")
    contact = leaks(table, CONTACT, shared)
    free_hard = leaks(table, FREE_TEXT, everywhere_banned)
    free_gap = leaks(
        table,
        FREE_TEXT,
        (
            "webhook:",
            "search",
            f"topic:{topics.LIFECYCLE}",
            f"topic:{topics.DEAD_LETTER}",
            "outbox:outbox-staff",
        ),
    )
    scenario.check(
        "contact canaries in logs, metrics, webhooks, search, stats, lifecycle",
        len(contact),
        evidence=contact,
    )
    scenario.check(
        "free-text canaries in logs, metrics or stats", len(free_hard), evidence=free_hard
    )
    scenario.check(
        "free-text canaries in webhooks, search, lifecycle, dead letters, staff messages",
        len(free_gap),
        evidence=free_gap,
    )


def _shape(value: str) -> str:
    """A canary's shape for the report, not the value (the report is not a leak itself)."""
    return "".join("9" if ch.isdigit() else ch if not ch.isalnum() else "x" for ch in value)
