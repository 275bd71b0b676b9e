"""``sotong``: run the platform, file complaints, follow them, act on them.

sotong up                      the whole platform on the embedded backends
sotong run SERVICE             one service (intake, routing, tracker, notifier)
sotong file --body TEXT ...    file a complaint through intake
sotong status ID               a complaint's state and timeline from tracker
sotong act ID ACTION           a department command (start_site_check, resolve, transfer, …),
                               as the complaint's current department (looked up in tracker)
sotong resident ID ACTION      the resident's own actions (provide_info, withdraw, reopen,
                               correct --dong/--address/--title/--photo, rate --rating [--comment])
sotong due KIND RECEIVED_AT    the legal due time (민원 처리기간) of a complaint
sotong classify                route JSON lines {"text": ...} from stdin to departments
sotong classify-eval           evaluate the classifier on a held-out split (or --test FILE)
sotong rebuild                 rebuild the tracker's read models from its event store
sotong bench                   the pipeline's throughput and latency, and the raw ceilings
sotong keys generate [DIR]     a deployment's API keys as secret files (deploy/secrets)
sotong deadletter list|replay  what no consumer could process; send it back to its topic
"""

import argparse
import asyncio
import importlib
import json
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx

from portal.chatbot import cli as chatbot_cli
from routing import cli as routing_cli
from schemas.commands import DepartmentAction, ResidentAction
from services.settings import PROJECT_ROOT
from sotong import acls, deadletter
from sotong import keys as keys_cli
from sotong.resilience import run as resilience_run
from tracker import cli as tracker_cli

INTAKE_URL = os.environ.get("SOTONG_INTAKE_URL", "http://127.0.0.1:8001")
TRACKER_URL = os.environ.get("SOTONG_TRACKER_URL", "http://127.0.0.1:8003")


KST = ZoneInfo("Asia/Seoul")


def _local_dir() -> Path:
    """Everything the local stack and the CLI write stays in the clone, under ``var/``."""
    return Path(os.environ.get("SOTONG_LOCAL_DIR", PROJECT_ROOT / "var"))


def _home() -> Path:
    return Path(os.environ.get("SOTONG_HOME", _local_dir() / "cli"))


def _tokens_path() -> Path:
    return _home() / "tokens.json"


def _api_keys_path() -> Path:
    return Path(os.environ.get("SOTONG_API_KEYS_FILE", _local_dir() / "api-keys.json"))


def _staff_keys_path() -> Path:
    """Beside the department keys: ``sotong up`` writes both."""
    default = _api_keys_path().with_name("staff-keys.json")
    return Path(os.environ.get("SOTONG_STAFF_KEYS_FILE", default))


def _channel_keys_path() -> Path:
    """Beside the department keys: the channels' credentials ``sotong up`` generates."""
    default = _api_keys_path().with_name("channel-keys.json")
    return Path(os.environ.get("SOTONG_CHANNEL_KEYS_FILE", default))


def _channel_key(channel: str) -> str | None:
    """The credential to file as ``channel`` with, when this machine holds one (the local
    stack's, or a file a channel operator points SOTONG_CHANNEL_KEYS_FILE at)."""
    try:
        held = json.loads(_channel_keys_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    key = held.get(channel) if isinstance(held, dict) else None
    return str(key) if key else None


def local_time(value: str | None) -> str:
    """An API timestamp (ISO 8601 with an offset) as a person in Korea reads it."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"{moment.astimezone(KST):%Y-%m-%d %H:%M}"


def _load_tokens() -> dict[str, str]:
    try:
        data = json.loads(_tokens_path().read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _save_token(complaint_id: str, token: str) -> None:
    tokens = _load_tokens()
    tokens[complaint_id] = token
    path = _tokens_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tokens, indent=1))
    path.chmod(0o600)


def cmd_run(args: argparse.Namespace) -> int:
    import uvicorn

    from services import logs
    from services.http import server_protocol
    from services.settings import HttpServerSettings

    # Every service has the same layout: settings.py holds <Service>Settings, app.py create_app.
    settings_class = getattr(
        importlib.import_module(f"{args.service}.settings"), f"{args.service.capitalize()}Settings"
    )
    settings = settings_class()
    logs.configure(args.service, settings.log_level)
    app = importlib.import_module(f"{args.service}.app").create_app(settings)
    edge = HttpServerSettings()
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        # a request h11 cannot parse, or with too large a head, gets the JSON error too;
        # a refused request the client is still sending is read and discarded, bounded
        http=server_protocol(
            max_head_bytes=edge.max_header_bytes,
            linger_bytes=edge.linger_bytes,
            linger_seconds=edge.linger_seconds,
        ),
        h11_max_incomplete_event_size=edge.max_header_bytes,
    )
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from sotong import localstack as ls
    from sotong import up

    settings = ls.LocalStackSettings(dir=_local_dir())
    keys_path, staff_path = _api_keys_path(), _staff_keys_path()

    def service_env(env: dict[str, str]) -> dict[str, str]:
        return env | ls.local_service_env(settings.dir, keys_path, staff_path)

    return up.run(
        settings, service_env=service_env, describe=up.describe_local(keys_path, staff_path)
    )


def _error_text(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
    except ValueError:
        return f"{response.status_code}: {response.text}"
    return f"{response.status_code}: {error.get('code')}: {error.get('message')}"


def _fail(response: httpx.Response) -> int:
    print(f"error {_error_text(response)}", file=sys.stderr)
    return 1


def cmd_file(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"channel": args.channel, "body": args.body}
    if args.title:
        body["title"] = args.title
    if args.channel_ref:
        body["channel_ref"] = args.channel_ref
    if args.service_code:
        body["service_code"] = args.service_code
    resident = {
        k: v for k, v in (("name", args.name), ("phone", args.phone), ("email", args.email)) if v
    }
    if resident:
        body["resident"] = resident
    location = {k: v for k, v in (("address", args.address), ("dong", args.dong)) if v}
    if location:
        body["location"] = location
    # one key for this invocation: a retry after a lost answer gets the first answer back
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    credential = _channel_key(args.channel)
    if credential and (args.channel_ref or args.channel != "web"):
        headers["X-Api-Key"] = credential  # only its holder files as a credentialed channel
    for attempt in range(3):
        try:
            response = httpx.post(
                f"{INTAKE_URL}/v1/complaints", json=body, headers=headers, timeout=30
            )
            break
        except httpx.TransportError:
            if attempt == 2:
                raise
    if response.status_code not in (200, 201):
        return _fail(response)
    result = response.json()
    token = result.get("tracking_token")  # a duplicate (channel, channel_ref) has none
    if token:
        _save_token(result["complaint_id"], token)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(f"complaint_id   {result['complaint_id']}")
        print(f"receipt_number {result['receipt_number']}")
        if token:
            print(f"tracking_token {token}  (saved in {_tokens_path()})")
        else:
            print("filed before with this channel_ref: its tokens went to the first filer")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    token = args.token or _load_tokens().get(args.complaint_id)
    if not token:
        print(
            "no tracking token: pass --token (sotong file saves it for complaints it filed)",
            file=sys.stderr,
        )
        return 2
    response = httpx.get(
        f"{TRACKER_URL}/v1/complaints/{args.complaint_id}",
        headers={"X-Tracking-Token": token},
        timeout=30,
    )
    if response.status_code != 200:
        return _fail(response)
    view = response.json()
    if args.json:
        print(json.dumps(view, ensure_ascii=False, indent=1))
        return 0
    overdue = "  OVERDUE" if view.get("overdue") else ""
    print(f"{view['complaint_id']}  receipt {view.get('receipt_number')}  state: {view['state']}")
    print("  (times are Korean time, Asia/Seoul)")
    if view.get("due_at"):
        print(f"  due {local_time(view['due_at'])} (KST){overdue}")
    for entry in view.get("timeline", []):
        who = entry.get("department_name") or entry.get("department") or ""
        handler = entry.get("handler") or {}
        if handler:
            who += f" / {handler.get('name')} ({handler.get('office_phone')})"
        note = f"  — {entry['note']}" if entry.get("note") else ""
        print(f"  {local_time(entry['occurred_at'])}  {entry['state']:<17} {who}{note}")
    for refused in view.get("rejections", []):
        print(f"  refused {refused['action']}: {refused['code']} — {refused['reason_ko']}")
    return 0


class CannotAct(Exception):
    """What ``sotong act`` lacks to send a command, said plainly; ``exit_code`` 2 when the
    arguments or the local files must change, 1 when the complaint itself is the problem."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _key_file(path: Path, what: str, otherwise: str = "pass --api-key KEY") -> dict[str, str]:
    try:
        keys = json.loads(path.read_text())
    except FileNotFoundError:
        raise CannotAct(f"no {what} file {path}: `sotong up` writes it; or {otherwise}") from None
    except (OSError, ValueError) as exc:
        raise CannotAct(f"cannot read the {what} file {path}: {exc}") from None
    if not isinstance(keys, dict):
        raise CannotAct(f"the {what} file {path} is not a JSON object of name → key")
    return {str(name): str(key) for name, key in keys.items()}


def _check_department(code: str, option: str) -> None:
    from schemas.catalogue import catalogue

    known = catalogue().codes
    if code not in known:
        raise CannotAct(
            f"unknown department {code!r} ({option}); the codes are: {', '.join(sorted(known))}"
        )


async def current_department(complaint_id: str, tracker: httpx.AsyncClient) -> str:
    """The department responsible for the complaint now, as the tracker knows it: asked
    with the local stack's staff key, so it works for any complaint, however filed."""
    from sotong.localstack import STAFF_NAME

    path = _staff_keys_path()
    staff = _key_file(path, "staff key", "pass --department CODE or --api-key KEY")
    key = staff.get(STAFF_NAME) or next(iter(staff.values()), None)
    if not key:
        raise CannotAct(f"the staff key file {path} holds no key: `sotong up` writes one")
    try:
        response = await tracker.get(
            f"/v1/staff/complaints/{quote(complaint_id, safe='')}", headers={"X-Api-Key": key}
        )
    except httpx.TransportError as exc:
        raise CannotAct(
            f"the tracker at {tracker.base_url} does not answer ({exc}): is `sotong up` running? "
            "Or pass --department CODE",
            exit_code=1,
        ) from None
    if response.status_code == 404:
        raise CannotAct(
            f"no such complaint: {complaint_id} (the tracker has none with this id; one filed "
            "a moment ago may take a second to arrive)",
            exit_code=1,
        )
    if response.status_code == 401:
        raise CannotAct(
            f"the tracker at {tracker.base_url} refused the staff key in {path}: restart "
            "`sotong up` so the tracker reads it, or pass --department CODE",
            exit_code=1,
        )
    if response.status_code != 200:
        raise CannotAct(f"the tracker answered {_error_text(response)}", exit_code=1)
    found = response.json()
    department = (found.get("department") or {}).get("code")
    if not department:
        raise CannotAct(
            f"complaint {complaint_id} has no department yet (state: "
            f"{found.get('state') or 'not routed'}): try again when routing has assigned it, "
            "or pass --department CODE",
            exit_code=1,
        )
    return str(department)


async def department_key(args: argparse.Namespace, tracker: httpx.AsyncClient) -> str:
    """The key to send the command with: ``--api-key``; else the key of ``--department``,
    or of the complaint's current department, from the local key file."""
    if args.api_key:
        return str(args.api_key)
    if args.department:
        _check_department(args.department, "--department")
        department = str(args.department)
    else:
        department = await current_department(args.complaint_id, tracker)
    path = _api_keys_path()
    keys = _key_file(path, "department API key")
    if department not in keys:
        raise CannotAct(f"no API key for department {department!r} in {path}")
    return keys[department]


async def act(
    args: argparse.Namespace, *, intake: httpx.AsyncClient, tracker: httpx.AsyncClient
) -> int:
    """``sotong act``: send a department command through intake."""
    body: dict[str, Any] = {"action": args.action}
    for name in ("note", "to_department", "new_due_at", "remedy", "handler_id"):
        if getattr(args, name):
            body[name] = getattr(args, name)
    if args.resident_consent:
        body["resident_consent"] = True
    try:
        if args.to_department:
            _check_department(args.to_department, "--to-department")
        key = await department_key(args, tracker)
        response = await intake.post(
            f"/v1/complaints/{quote(args.complaint_id, safe='')}/commands",
            json=body,
            headers={"X-Api-Key": key},
        )
    except CannotAct as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    except httpx.TransportError as exc:
        print(
            f"intake at {intake.base_url} does not answer ({exc}): is `sotong up` running?",
            file=sys.stderr,
        )
        return 1
    if response.status_code != 202:
        return _fail(response)
    print(json.dumps(response.json(), ensure_ascii=False))
    return 0


def cmd_act(args: argparse.Namespace) -> int:
    async def run() -> int:
        async with (
            httpx.AsyncClient(base_url=INTAKE_URL, timeout=30) as intake,
            httpx.AsyncClient(base_url=TRACKER_URL, timeout=30) as tracker,
        ):
            return await act(args, intake=intake, tracker=tracker)

    return asyncio.run(run())


def cmd_resident(args: argparse.Namespace) -> int:
    token = args.token or _load_tokens().get(args.complaint_id)
    if not token:
        print("no tracking token: pass --token", file=sys.stderr)
        return 2
    body: dict[str, Any] = {"action": args.action, "token": token}
    if args.note:
        body["note"] = args.note
    for name in ("address", "dong", "title", "rating", "comment"):  # correct, rate
        if getattr(args, name) is not None:
            body[name] = getattr(args, name)
    for path in args.photo or ():  # correct: 사진 추가, each uploaded first as at filing
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            print(f"--photo {path}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        uploaded = httpx.post(
            f"{INTAKE_URL}/v1/photos", files={"file": (Path(path).name, data)}, timeout=30
        )
        if uploaded.status_code != 201:
            return _fail(uploaded)
        body.setdefault("photos", []).append(uploaded.json()["photo_id"])
    response = httpx.post(
        f"{INTAKE_URL}/v1/complaints/{args.complaint_id}/resident-actions", json=body, timeout=30
    )
    if response.status_code != 202:
        return _fail(response)
    print(json.dumps(response.json(), ensure_ascii=False))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import asyncio

    from sotong.bench import bench, output_dir

    asyncio.run(bench(args, output_dir(args.out)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sotong", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("up", help="run the whole platform on the embedded backends").set_defaults(
        func=cmd_up
    )

    run = sub.add_parser("run", help="run one service")
    run.add_argument("service", choices=["intake", "routing", "tracker", "notifier", "portal"])
    run.set_defaults(func=cmd_run)

    file = sub.add_parser("file", help="file a complaint")
    file.add_argument("--body", required=True)
    file.add_argument("--title")
    file.add_argument("--channel", default="web")
    file.add_argument("--channel-ref")
    file.add_argument("--service-code")
    file.add_argument("--name")
    file.add_argument("--phone")
    file.add_argument("--email")
    file.add_argument("--address")
    file.add_argument("--dong", help="행정동, e.g. 청라1동")
    file.add_argument("--json", action="store_true")
    file.set_defaults(func=cmd_file)

    status = sub.add_parser("status", help="a complaint's state and timeline")
    status.add_argument("complaint_id")
    status.add_argument("--token")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    act = sub.add_parser("act", help="send a department command")
    act.add_argument("complaint_id")
    act.add_argument("action", choices=[a.value for a in DepartmentAction])
    act.add_argument("--note", help="result (resolve), reason (transfer, reject, extend, …)")
    act.add_argument("--to-department", help="transfer: the receiving department's code")
    act.add_argument("--new-due-at", help="extend: ISO 8601 with offset")
    act.add_argument("--resident-consent", action="store_true", help="extend: consent recorded")
    act.add_argument("--remedy", help="reject: what the resident can do")
    act.add_argument("--handler-id", help="reassign: a specific handler")
    act.add_argument(
        "--department",
        help="act as this department (its key from the local key file); default: the "
        "complaint's current department, looked up in tracker with the local staff key",
    )
    act.add_argument(
        "--api-key",
        default=os.environ.get("SOTONG_API_KEY"),
        help="send with this department key (default: $SOTONG_API_KEY)",
    )
    act.set_defaults(func=cmd_act)

    resident = sub.add_parser(
        "resident", help="act as the resident (answer, withdraw, reopen, correct, rate)"
    )
    resident.add_argument("complaint_id")
    resident.add_argument("action", choices=[a.value for a in ResidentAction])
    resident.add_argument("--note")
    resident.add_argument("--token")
    resident.add_argument("--address", help="correct: the new address")
    resident.add_argument("--dong", help="correct: the new 행정동 (one of the district's)")
    resident.add_argument("--title", help="correct: the new title")
    resident.add_argument(
        "--photo",
        action="append",
        metavar="PATH",
        help="correct: a photo to add (JPEG, PNG or HEIC; repeat for more)",
    )
    resident.add_argument("--rating", type=int, help="rate: 1 to 5")
    resident.add_argument("--comment", help="rate: an optional comment")
    resident.set_defaults(func=cmd_resident)

    bench = sub.add_parser("bench", help="throughput and latency against the raw ceilings")
    bench.add_argument(
        "--complaints", type=int, default=2000, help="saturation size (half of it early on)"
    )
    bench.add_argument("--rate", type=float, default=50.0, help="offered rate of the fixed phase")
    bench.add_argument("--duration", type=float, default=60.0, help="seconds of the fixed phase")
    bench.add_argument("--concurrency", type=int, default=64, help="HTTP requests in flight")
    bench.add_argument("--raw-messages", type=int, default=1000, help="for the raw ceilings")
    bench.add_argument("--wait", type=float, default=180.0, help="seconds to wait for stragglers")
    bench.add_argument("--out", help="directory for the JSON and PNG (default var/bench)")
    bench.set_defaults(func=cmd_bench)

    resilience_run.register(sub)
    routing_cli.register(sub)
    tracker_cli.register(sub)
    acls.register(sub)
    keys_cli.register(sub)
    chatbot_cli.register(sub, local=routing_cli.local)
    deadletter.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
