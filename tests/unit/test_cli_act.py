"""``sotong act`` on the local stack: any complaint, however filed, as its department now.

The CLI's own functions against the tracker app (in-memory broker and store, through
httpx's ASGI transport) and a recording stand-in for intake: no sockets, no processes.
"""

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from routing.catalogue import Catalogue
from sotong import cli, localstack
from tests.unit.test_tracker_api import Tracker, running
from tests.unit.test_tracker_projection import filed
from tests.unit.test_tracker_read_api import district, unfiled

DEPARTMENT_KEYS = {code: f"key-of-{code}" for code in Catalogue.load().departments}
ACCEPTED = {"command_id": "cmd-1", "complaint_id": "c-3", "status": "accepted"}


@dataclass
class Intake:
    """Stands in for intake's command endpoint: records what it is sent."""

    answer: httpx.Response = field(default_factory=lambda: httpx.Response(202, json=ACCEPTED))
    received: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.received.append(request)
        return self.answer

    @property
    def sent(self) -> list[tuple[str, str, dict[str, object]]]:
        return [
            (r.url.path, r.headers.get("X-Api-Key", ""), json.loads(r.content))
            for r in self.received
        ]


@dataclass
class Local:
    """The local stack's files, the tracker it started, and intake."""

    files: Path
    tracker: Tracker
    intake: Intake
    printed: pytest.CaptureFixture[str]

    @property
    def staff_keys(self) -> Path:
        return self.files / "staff-keys.json"

    @property
    def department_keys(self) -> Path:
        return self.files / "api-keys.json"

    async def act(
        self, *argv: str, tracker: httpx.AsyncClient | None = None
    ) -> tuple[int, str, str]:
        """Run ``sotong act ARGV``: the exit code, what it printed and what it complained."""
        args = cli.build_parser().parse_args(["act", *argv])
        self.printed.readouterr()
        async with httpx.AsyncClient(
            transport=httpx.MockTransport(self.intake), base_url="http://intake"
        ) as intake:
            code = await cli.act(args, intake=intake, tracker=tracker or self.tracker.http)
        out, err = self.printed.readouterr()
        return code, out, err


@pytest.fixture
async def local(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> AsyncIterator[Local]:
    """``sotong up``'s key files (the staff key written by the local stack's own function)
    and the tracker started with them, holding a district of complaints none of which the
    CLI filed (it has no tracking token for any)."""
    monkeypatch.setenv("SOTONG_LOCAL_DIR", str(tmp_path))
    for name in ("SOTONG_API_KEYS_FILE", "SOTONG_STAFF_KEYS_FILE", "SOTONG_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "api-keys.json").write_text(json.dumps(DEPARTMENT_KEYS))
    staff = localstack.local_staff_keys(cli._staff_keys_path())
    async with running(
        api_keys={code: SecretStr(key) for code, key in DEPARTMENT_KEYS.items()},
        staff_api_keys={name: SecretStr(key) for name, key in staff.items()},
    ) as tracker:
        await tracker.deliver(*district())
        yield Local(tmp_path, tracker, Intake(), capsys)


def refusing(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"the tracker was asked: {request.url}")


def down(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://tracker")


# -- it works for any complaint ---------------------------------------------------------------


async def test_the_complaints_current_department_is_looked_up_and_acts(local: Local) -> None:
    """c-3 was filed without the CLI and moved from roads to parks: parks acts."""
    code, out, err = await local.act("c-3", "start_site_check", "--note", "내일 오전 방문")

    assert (code, err) == (0, "")
    assert json.loads(out) == ACCEPTED
    assert local.intake.sent == [
        (
            "/v1/complaints/c-3/commands",
            DEPARTMENT_KEYS["parks"],
            {"action": "start_site_check", "note": "내일 오전 방문"},
        )
    ]


async def test_a_transfer_is_sent_as_the_department_holding_it(local: Local) -> None:
    code, _, _ = await local.act(
        "c-1", "transfer", "--to-department", "parks", "--note", "공원 시설물"
    )

    assert code == 0
    assert local.intake.sent == [
        (
            "/v1/complaints/c-1/commands",
            DEPARTMENT_KEYS["roads"],
            {"action": "transfer", "note": "공원 시설물", "to_department": "parks"},
        )
    ]


async def test_department_and_api_key_still_choose_the_key_without_asking(local: Local) -> None:
    as_roads = await local.act(
        "c-3", "start_review", "--department", "roads", tracker=client(refusing)
    )
    as_given = await local.act(
        "c-3", "start_review", "--api-key", "k-given", tracker=client(refusing)
    )

    assert (as_roads[0], as_given[0]) == (0, 0)
    assert [key for _, key, _ in local.intake.sent] == [DEPARTMENT_KEYS["roads"], "k-given"]


# -- and says what is actually missing ------------------------------------------------------------


async def test_an_unknown_complaint_is_no_such_complaint(local: Local) -> None:
    code, out, err = await local.act("c-9", "start_site_check")

    assert code == 1
    assert out == ""
    assert err.startswith("no such complaint: c-9")
    assert local.intake.received == []


async def test_a_complaint_only_commands_were_sent_for_is_no_such_complaint(local: Local) -> None:
    """A command for a mistyped id is refused and stored in the tracker, which still has no
    complaint by that id (issue 15 §12)."""
    await local.tracker.deliver(*unfiled("c-typo"))

    code, _, err = await local.act("c-typo", "start_site_check")

    assert (code, err.split(":")[0]) == (1, "no such complaint")


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--department", "nope"], id="department"),
        pytest.param(["--to-department", "nope", "--note", "이송"], id="to-department"),
    ],
)
async def test_an_unknown_department_is_unknown_department(local: Local, argv: list[str]) -> None:
    action = "transfer" if "--to-department" in argv else "start_review"

    code, _, err = await local.act("c-1", action, *argv, tracker=client(refusing))

    assert code == 2
    assert err.startswith("unknown department 'nope' (")
    assert "resource-circulation" in err
    assert local.intake.received == []


async def test_a_complaint_not_routed_yet_says_so(local: Local) -> None:
    await local.tracker.deliver(filed("c-new"))

    code, _, err = await local.act("c-new", "start_site_check")

    assert code == 1
    assert err.startswith("complaint c-new has no department yet (state: not routed)")
    assert "--department" in err


async def test_a_missing_staff_key_file_is_named(local: Local) -> None:
    local.staff_keys.unlink()

    code, _, err = await local.act("c-1", "start_site_check", tracker=client(refusing))

    assert code == 2
    assert f"no staff key file {local.staff_keys}" in err
    assert "sotong up" in err
    assert "--department" in err


async def test_a_missing_department_key_file_is_named(local: Local) -> None:
    local.department_keys.unlink()

    code, _, err = await local.act("c-1", "start_site_check")

    assert code == 2
    assert f"no department API key file {local.department_keys}" in err


async def test_a_department_missing_from_the_key_file_is_named(local: Local) -> None:
    local.department_keys.write_text(json.dumps({"roads": DEPARTMENT_KEYS["roads"]}))

    code, _, err = await local.act("c-3", "start_site_check")

    assert code == 2
    assert err.strip() == f"no API key for department 'parks' in {local.department_keys}"


async def test_a_staff_key_the_tracker_does_not_know_is_named(local: Local) -> None:
    local.staff_keys.write_text(json.dumps({"operator": "from-another-start"}))

    code, _, err = await local.act("c-1", "start_site_check")

    assert code == 1
    assert f"refused the staff key in {local.staff_keys}" in err


async def test_a_tracker_that_does_not_answer_is_said(local: Local) -> None:
    code, _, err = await local.act("c-1", "start_site_check", tracker=client(down))

    assert code == 1
    assert "the tracker at http://tracker does not answer" in err


async def test_intakes_refusal_is_shown(local: Local) -> None:
    local.intake.answer = httpx.Response(
        422,
        json={"error": {"code": "invalid_request", "message": "note: a result is required"}},
    )

    code, _, err = await local.act("c-1", "resolve")

    assert code == 1
    assert err.strip() == "error 422: invalid_request: note: a result is required"
