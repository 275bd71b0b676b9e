"""A service killed mid-flow (SIGKILL) and restarted loses nothing and duplicates nothing."""

from collections import Counter
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack, eventually
from tests.e2e.test_walking_skeleton import STEPS, act, file, state_is

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.mark.parametrize("victim", ["routing", "notifier", "tracker"])
async def test_killed_service_catches_up_exactly_once(
    stack: Stack, http: httpx.AsyncClient, victim: str
) -> None:
    first = await file(http, stack, vouched=True)
    await state_is(http, stack, first, "handler_assigned")

    stack.services[victim].child.kill()
    second = await file(
        http,
        stack,
        vouched=True,
        body="집 앞 도로에 포트홀이 생겨서 위험해요",
        location={"dong": "석남1동"},
    )
    await act(http, stack, first["complaint_id"], "start_site_check", "내일 오전 방문")
    await act(http, stack, first["complaint_id"], "start_review")
    stack.services[victim].child.start()
    stack.services[victim].wait_ready()

    one = await state_is(http, stack, first, "reviewing")
    two = await state_is(http, stack, second, "handler_assigned")
    assert [e["state"] for e in one["timeline"]] == STEPS[:5]
    assert [e["sequence"] for e in one["timeline"]] == [1, 2, 3, 4, 5]
    assert [e["state"] for e in two["timeline"]] == STEPS[:3]
    assert two["department"]["code"] == "roads"

    for filed, expected in ((first, 5), (second, 3)):

        def enough(f: dict[str, Any] = filed, n: int = expected) -> list[dict[str, Any]] | None:
            lines = stack.outbox_lines(f["complaint_id"])
            return lines if len(lines) >= n else None

        lines = await eventually(enough, what=f"{expected} outbox messages")
        assert [line["state"] for line in lines] == STEPS[:expected]
        assert max(Counter(line["delivery_id"] for line in lines).values()) == 1
