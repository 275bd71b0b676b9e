"""``sotong keys``: the API keys a deployment starts with, as secret files.

``sotong keys generate [DIR]`` writes, in ``DIR`` (default ``deploy/secrets``):

- ``department-keys.json`` — one key per department of the catalogue
  (``SOTONG_INTAKE_API_KEYS`` and ``SOTONG_TRACKER_API_KEYS``);
- ``staff-keys.json`` — ``{"operator": key}`` (``SOTONG_TRACKER_STAFF_API_KEYS``);
- ``tracker-staff-key`` — that operator key alone, for intake's Open311 reads of the
  tracker (``SOTONG_INTAKE_TRACKER_API_KEY``);
- ``open311-keys.json`` — one key per Open311 client app (``SOTONG_INTAKE_OPEN311_KEYS``);
- ``command-signing-keys.json`` — ``{"k1": secret}``, with which intake signs commands and
  routing checks them (``SOTONG_COMMAND_SIGNING_KEYS``, ``services.signing``);
- ``resident-phone-key``, ``recipient-hash-key``, ``intake-phone-key`` — keys of the keyed
  hashes routing recognises a returning resident by (``SOTONG_ROUTING_RESIDENT_PHONE_KEY``),
  the notifier counts its daily cap under (``SOTONG_NOTIFIER_RECIPIENT_HASH_KEY``) and
  intake counts filings per phone number under (``SOTONG_INTAKE_PHONE_HASH_KEY``);
- ``channel-keys.json`` — one credential per upstream channel (``SOTONG_INTAKE_CHANNEL_KEYS``
  and ``SOTONG_TRACKER_CHANNEL_KEYS``): only its holder files as that channel and may name
  the end user it acts for (``X-End-User``), who is then rate-limited on their own;
- ``staff-contacts.json`` — the staff directory (``SOTONG_NOTIFIER_STAFF_DIRECTORY_PATH``),
  created *empty*: work mobiles and e-mails are people's data the district enters, never
  generated (until then handler and supervisor notices are skipped with that reason);
- ``stream-ticket-key`` — signs the short-lived tickets a browser opens a live timeline
  with, shared by every tracker replica (``SOTONG_TRACKER_STREAM_TICKET_KEY``);
- ``portal-intake-keys.json``, ``portal-tracker-key``, ``kakao-channel-key`` — the portal's
  share of ``channel-keys.json`` (``web`` and ``chatbot`` at intake, ``web`` at the tracker,
  ``kakao`` for its Kakao skill), written from it so the portal holds no other channel's.

Run again, it keeps every key already there and adds what is missing (a department new in
the catalogue, a new ``--open311-app``). ``docker-compose.yml`` mounts these files as
compose secrets; ``sotong keys k8s DIR`` prints the Kubernetes Secret made of the same
files (or ``kubectl create secret generic sotong-keys --from-file=DIR``).

The directory is private (0700); the files in it are 0644 so that the services' user in
the image (uid 10001) can read them once compose mounts them.
"""

import argparse
import json
import os
import secrets
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from schemas.catalogue import catalogue
from services.settings import PROJECT_ROOT

DEFAULT_DIR = PROJECT_ROOT / "deploy" / "secrets"
DEPARTMENT_KEYS = "department-keys.json"
STAFF_KEYS = "staff-keys.json"
TRACKER_STAFF_KEY = "tracker-staff-key"
OPEN311_KEYS = "open311-keys.json"
SIGNING_KEYS = "command-signing-keys.json"
STAFF_CONTACTS = "staff-contacts.json"
PHONE_KEY = "resident-phone-key"
RECIPIENT_KEY = "recipient-hash-key"
STREAM_TICKET_KEY = "stream-ticket-key"
INTAKE_PHONE_KEY = "intake-phone-key"
CHANNEL_KEYS = "channel-keys.json"
CHANNELS = ("web", "chatbot", "kakao", "call_center")
PORTAL_INTAKE_KEYS = "portal-intake-keys.json"
PORTAL_TRACKER_KEY = "portal-tracker-key"
KAKAO_CHANNEL_KEY = "kakao-channel-key"
PORTAL_CHANNELS = ("web", "chatbot")
"""What the portal files as: its form and its chat handoff; its Kakao skill files as kakao."""
"""Channels that file through intake's API with a credential (Open311 apps have their own)."""
FILES = (
    DEPARTMENT_KEYS,
    STAFF_KEYS,
    TRACKER_STAFF_KEY,
    OPEN311_KEYS,
    SIGNING_KEYS,
    PHONE_KEY,
    RECIPIENT_KEY,
    STAFF_CONTACTS,
    STREAM_TICKET_KEY,
    INTAKE_PHONE_KEY,
    CHANNEL_KEYS,
    PORTAL_INTAKE_KEYS,
    PORTAL_TRACKER_KEY,
    KAKAO_CHANNEL_KEY,
)
SIGNING_KEY_ID = "k1"
STAFF_NAME = "operator"
SECRET_NAME = "sotong-keys"  # noqa: S105 - the Kubernetes Secret's name, not a secret

VARIABLES: Mapping[str, Mapping[str, str]] = {
    "intake": {
        "SOTONG_INTAKE_API_KEYS": DEPARTMENT_KEYS,
        "SOTONG_INTAKE_OPEN311_KEYS": OPEN311_KEYS,
        "SOTONG_INTAKE_TRACKER_API_KEY": TRACKER_STAFF_KEY,
        "SOTONG_COMMAND_SIGNING_KEYS": SIGNING_KEYS,
        "SOTONG_INTAKE_CHANNEL_KEYS": CHANNEL_KEYS,
        "SOTONG_INTAKE_PHONE_HASH_KEY": INTAKE_PHONE_KEY,
    },
    "routing": {
        "SOTONG_COMMAND_SIGNING_KEYS": SIGNING_KEYS,
        "SOTONG_ROUTING_RESIDENT_PHONE_KEY": PHONE_KEY,
    },
    "notifier": {"SOTONG_NOTIFIER_RECIPIENT_HASH_KEY": RECIPIENT_KEY},
    "tracker": {
        "SOTONG_TRACKER_API_KEYS": DEPARTMENT_KEYS,
        "SOTONG_TRACKER_STAFF_API_KEYS": STAFF_KEYS,
        "SOTONG_TRACKER_STREAM_TICKET_KEY": STREAM_TICKET_KEY,
        "SOTONG_TRACKER_CHANNEL_KEYS": CHANNEL_KEYS,
    },
}
"""Which service reads which file, as which setting: what the deploy files must wire."""

PORTAL_VARIABLES: Mapping[str, str] = {
    "SOTONG_PORTAL_INTAKE_KEYS": PORTAL_INTAKE_KEYS,
    "SOTONG_PORTAL_TRACKER_KEY": PORTAL_TRACKER_KEY,
    "SOTONG_CHATBOT_INTAKE_API_KEY": KAKAO_CHANNEL_KEY,
}
"""The portal's (a channel, not a service: no Kafka), as ``VARIABLES`` for the services."""


def new_key() -> str:
    return secrets.token_urlsafe(32)


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise SystemExit(f"{path}: not JSON ({exc}); fix or remove it") from exc
    if not isinstance(data, dict) or not all(isinstance(v, str) and v for v in data.values()):
        raise SystemExit(f"{path}: expected a JSON object of name → key")
    return {str(k): v for k, v in data.items()}


def _write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), 0o644)
        file.write(text)


def generate(directory: Path, open311_apps: Sequence[str] = ()) -> dict[str, str]:
    """Write the key files, keeping existing keys; answer file name → what changed."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    changed: dict[str, str] = {}

    def keep_and_add(name: str, wanted: Sequence[str]) -> dict[str, str]:
        keys = _read(directory / name)
        added = [n for n in wanted if n not in keys]
        if added or not (directory / name).exists():
            keys |= {n: new_key() for n in added}
            _write(directory / name, json.dumps(keys, indent=1, sort_keys=True) + "\n")
            changed[name] = f"added {', '.join(added)}" if added else "created"
        return keys

    keep_and_add(DEPARTMENT_KEYS, catalogue().codes)
    staff = keep_and_add(STAFF_KEYS, [STAFF_NAME])
    keep_and_add(OPEN311_KEYS, list(open311_apps))
    keep_and_add(SIGNING_KEYS, [SIGNING_KEY_ID])  # intake signs commands, routing checks
    channels = keep_and_add(CHANNEL_KEYS, list(CHANNELS))
    # the portal's share of them, as the files its settings read (kept in step)
    derived = {
        PORTAL_INTAKE_KEYS: json.dumps({c: channels[c] for c in PORTAL_CHANNELS}, sort_keys=True)
        + "\n",
        PORTAL_TRACKER_KEY: channels["web"] + "\n",
        KAKAO_CHANNEL_KEY: channels["kakao"] + "\n",
    }
    for name, text in derived.items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            _write(path, text)
            changed[name] = "written"
    # keyed hashes of residents' phones, and the tracker's stream tickets
    for name in (PHONE_KEY, RECIPIENT_KEY, INTAKE_PHONE_KEY, STREAM_TICKET_KEY):
        if not (directory / name).exists():
            _write(directory / name, new_key() + "\n")
            changed[name] = "created"
    if not (directory / STAFF_CONTACTS).exists():
        # people's work contacts are not generated: an empty directory, which the district
        # fills in (until then staff notices are skipped with that reason, never faked)
        _write(directory / STAFF_CONTACTS, json.dumps({"staff": {}}) + "\n")
        changed[STAFF_CONTACTS] = "created empty: add each handler's work mobile and e-mail"
    operator = staff[STAFF_NAME]
    path = directory / TRACKER_STAFF_KEY
    if not path.exists() or path.read_text(encoding="utf-8").strip() != operator:
        _write(path, operator + "\n")
        changed[TRACKER_STAFF_KEY] = "written"
    return changed


def k8s_secret(directory: Path, name: str = SECRET_NAME) -> dict[str, Any]:
    """The Kubernetes Secret holding the key files, as the manifests reference it."""
    missing = [f for f in FILES if not (directory / f).is_file()]
    if missing:
        raise SystemExit(f"{directory}: missing {', '.join(missing)}; run sotong keys generate")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "sotong"}},
        "type": "Opaque",
        "stringData": {f: _compact(directory / f) for f in FILES},
    }


def _compact(path: Path) -> str:
    text = path.read_text(encoding="utf-8").strip()
    return json.dumps(json.loads(text), sort_keys=True) if path.suffix == ".json" else text


def cmd_generate(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    changed = generate(directory, args.open311_app)
    for name in FILES:
        print(f"{directory / name}: {changed.get(name, 'kept')}")
    return 0


def cmd_k8s(args: argparse.Namespace) -> int:
    yaml.safe_dump(k8s_secret(Path(args.dir)), sys.stdout, allow_unicode=True, sort_keys=False)
    return 0


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    """Add ``keys generate`` and ``keys k8s`` to the ``sotong`` command line."""
    keys = sub.add_parser("keys", help="the API keys a deployment starts with")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    generate_cmd = actions.add_parser(
        "generate", help="write department, staff and Open311 keys as secret files"
    )
    generate_cmd.add_argument("dir", nargs="?", default=str(DEFAULT_DIR))
    generate_cmd.add_argument(
        "--open311-app",
        action="append",
        default=[],
        metavar="NAME",
        help="an Open311 client app to issue a key to (repeatable)",
    )
    generate_cmd.set_defaults(func=cmd_generate)
    k8s = actions.add_parser("k8s", help="print the Kubernetes Secret made of the key files")
    k8s.add_argument("dir", nargs="?", default=str(DEFAULT_DIR))
    k8s.set_defaults(func=cmd_k8s)
