"""``sotong file`` on the local stack: a channel that has a credential files with it, so
the reference and channel a user asks for are accepted; web without a reference stays
anonymous, as any caller may file."""

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from sotong import cli

FILED = {
    "complaint_id": "c-1",
    "receipt_number": "261202-000001",
    "tracking_token": "t" * 32,
    "resident_token": "r" * 32,
    "duplicate": False,
}


@pytest.fixture
def sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    monkeypatch.setenv("SOTONG_LOCAL_DIR", str(tmp_path))
    for name in ("SOTONG_API_KEYS_FILE", "SOTONG_CHANNEL_KEYS_FILE", "SOTONG_HOME"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "channel-keys.json").write_text(json.dumps({"web": "web-key", "kakao": "k-key"}))
    calls: list[dict[str, Any]] = []

    def post(url: str, *, json: dict[str, Any], headers: dict[str, str], **_: Any) -> Any:
        calls.append({"body": json, "headers": headers})
        return httpx.Response(201, json=FILED, request=httpx.Request("POST", url))

    monkeypatch.setattr(httpx, "post", post)
    return calls


@pytest.mark.parametrize(
    ("argv", "credential"),
    [
        (["--channel-ref", "CC-1"], "web-key"),
        (["--channel", "kakao"], "k-key"),
        ([], None),  # web without a reference: anonymous, as anyone may file
        (["--channel", "call_center"], None),  # no credential held for it here
    ],
)
def test_a_credentialed_channel_files_with_the_local_stacks_credential(
    sent: list[dict[str, Any]], argv: list[str], credential: str | None
) -> None:
    args = cli.build_parser().parse_args(["file", "--body", "가로등이 꺼졌어요", *argv])
    assert cli.cmd_file(args) == 0
    [call] = sent
    assert call["headers"].get("X-Api-Key") == credential
    assert call["headers"]["Idempotency-Key"]
