"""``sotong resident ID correct|rate``: what the CLI sends intake (a stand-in that records)."""

from typing import Any

import httpx
import pytest

from sotong import cli


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []

    def post(url: str, *, json: dict[str, Any], timeout: float) -> httpx.Response:
        del timeout
        bodies.append({"url": url, **json})
        request = httpx.Request("POST", url)
        return httpx.Response(202, json={"command_id": "x"}, request=request)

    monkeypatch.setattr(httpx, "post", post)  # what sotong.cli calls
    return bodies


def test_correct_sends_the_fields_given(sent: list[dict[str, Any]]) -> None:
    code = cli.main(["resident", "c-1", "correct", "--token", "t", "--dong", "청라3동"])
    assert code == 0
    assert sent == [
        {
            "url": f"{cli.INTAKE_URL}/v1/complaints/c-1/resident-actions",
            "action": "correct",
            "token": "t",
            "dong": "청라3동",
        }
    ]


def test_rate_sends_the_rating_as_a_number(sent: list[dict[str, Any]]) -> None:
    argv = ["resident", "c-1", "rate", "--token", "t", "--rating", "4", "--comment", "좋아요"]
    assert cli.main(argv) == 0
    assert sent[0]["rating"] == 4
    assert sent[0]["comment"] == "좋아요"
