"""The deploy files agree with the code: settings names, ports, probes, image entrypoint.

Static checks only (no Docker engine, no cluster): docker-compose.yml, every manifest in
deploy/k8s/, the Dockerfile, .dockerignore and the image's health-check script are
parsed and held against the settings classes each service actually builds.
"""

import fnmatch
import importlib.util
import json
import os
import threading
import tomllib
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from pydantic_settings import BaseSettings

from intake.settings import IntakeSettings
from notifier.settings import NotifierSettings
from portal.chatbot.settings import ChatbotSettings
from portal.settings import PortalSettings
from routing.settings import RoutingSettings
from schemas.catalogue import catalogue
from services.settings import SECRETS_DIR_VARIABLE, ServiceSettings, Settings
from sotong import keys
from sotong.cli import build_parser
from tracker.settings import TrackerSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
HEALTHCHECK_SCRIPT = ROOT / "deploy" / "docker" / "healthcheck.py"

SETTINGS: dict[str, type[ServiceSettings]] = {
    "intake": IntakeSettings,
    "routing": RoutingSettings,
    "tracker": TrackerSettings,
    "notifier": NotifierSettings,
}
SERVICES = tuple(SETTINGS)
RUNS = (*SERVICES, "portal")
"""What the image runs: the services, and the portal (a channel: no Kafka, no keys)."""

COMPOSE_KAFKA = "kafka:9092"
COMPOSE_MONGO = "mongo:27017"
K8S_KAFKA_PLACEHOLDER = "kafka-bootstrap.kafka.svc:9092"
CONFIGMAP_NAME = "sotong-config"
IMAGE_UID = 10001


# --- what the code reads -------------------------------------------------------------


def env_names(cls: type[BaseSettings]) -> set[str]:
    """The variables pydantic-settings reads for ``cls``: its prefix plus each field's
    name, and nested settings (kafka, mongo, retry) under their own prefixes."""
    prefix = str(cls.model_config.get("env_prefix") or "")
    # every Sotong settings class also reads its secret files' directory
    names: set[str] = {SECRETS_DIR_VARIABLE} if issubclass(cls, Settings) else set()
    for name, field in cls.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
            names |= env_names(annotation)
        else:
            names.add(f"{prefix}{name}".upper())
    return names


def service_prefix(service: str) -> str:
    return str(SETTINGS[service].model_config.get("env_prefix") or "")


def default_port(service: str) -> int:
    default = SETTINGS[service].model_fields["http_port"].default
    assert isinstance(default, int), f"{service} has no default HTTP port"
    return default


def settings_from_env(
    service: str, env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch
) -> ServiceSettings:
    """Build the service's settings exactly as it would with only ``env`` set."""
    for name in list(os.environ):
        if name.upper().startswith("SOTONG_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return SETTINGS[service]()


def test_env_names_are_derived_from_the_settings_classes() -> None:
    names = env_names(NotifierSettings)
    assert {
        "SOTONG_KAFKA_BOOTSTRAP_SERVERS",
        "SOTONG_KAFKA_IDEMPOTENT_PRODUCER",
        "SOTONG_MONGO_URI",
        "SOTONG_MONGO_DATABASE",
        "SOTONG_RETRY_MAX_ATTEMPTS",
        "SOTONG_NOTIFIER_HTTP_HOST",
        "SOTONG_NOTIFIER_HTTP_PORT",
        "SOTONG_NOTIFIER_OUTBOX_PATH",
    } <= names
    assert "SOTONG_NOTIFIER_KAFKA" not in names
    assert "SOTONG_INTAKE_HTTP_PORT" not in names
    assert "SOTONG_INTAKE_RELAY_INTERVAL_SECONDS" in env_names(IntakeSettings)


# --- parsing helpers -----------------------------------------------------------------


def as_mapping(value: object, what: str) -> dict[str, Any]:
    assert isinstance(value, dict), f"{what} is not a mapping: {value!r}"
    return cast(dict[str, Any], value)


def as_list(value: object, what: str) -> list[Any]:
    assert isinstance(value, list), f"{what} is not a list: {value!r}"
    return value


def load_yaml(path: Path) -> dict[str, Any]:
    return as_mapping(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))


def load_all_yaml(path: Path) -> list[dict[str, Any]]:
    docs = yaml.safe_load_all(path.read_text(encoding="utf-8"))
    return [as_mapping(doc, f"a document in {path}") for doc in docs if doc is not None]


def env_strings(env: object, what: str) -> dict[str, str]:
    """Compose ``environment`` in either form (mapping or ``KEY=VALUE`` list)."""
    if isinstance(env, list):
        pairs = [str(item).split("=", 1) for item in env]
        return {pair[0]: pair[1] if len(pair) == 2 else "" for pair in pairs}
    mapping = as_mapping(env, what)
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in mapping.items()}


# --- docker-compose.yml --------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(ROOT / "docker-compose.yml")


def compose_service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    services = as_mapping(compose.get("services"), "compose services")
    assert name in services, f"docker-compose.yml has no service {name!r}"
    return as_mapping(services[name], f"compose service {name}")


def compose_env(compose: dict[str, Any], name: str) -> dict[str, str]:
    return env_strings(compose_service(compose, name).get("environment", {}), name)


def published_ports(service: dict[str, Any]) -> list[tuple[int, int]]:
    """(host port, container port) for each entry of ``ports``."""
    result = []
    for entry in as_list(service.get("ports", []), "ports"):
        if isinstance(entry, dict):
            result.append((int(entry["published"]), int(entry["target"])))
        else:
            parts = str(entry).split("/")[0].split(":")
            assert len(parts) >= 2, f"port {entry!r} is not published on the host"
            result.append((int(parts[-2]), int(parts[-1])))
    return result


def test_compose_has_the_four_services_and_both_backends(compose: dict[str, Any]) -> None:
    services = as_mapping(compose.get("services"), "compose services")
    assert set(SERVICES) | {"kafka", "mongo"} <= set(services)


@pytest.mark.parametrize("service", SERVICES)
def test_compose_service_is_the_one_image_running_its_name(
    compose: dict[str, Any], service: str
) -> None:
    spec = compose_service(compose, service)
    build = spec.get("build")
    context = build.get("context") if isinstance(build, dict) else build
    assert context == ".", f"{service} is not built from the repository's Dockerfile"
    assert spec.get("command") == [service]
    args = build_parser().parse_args(["run", *spec["command"]])
    assert args.service == service


@pytest.mark.parametrize("service", SERVICES)
def test_compose_env_names_are_ones_the_service_reads(
    compose: dict[str, Any], service: str
) -> None:
    env = compose_env(compose, service)
    prefix = service_prefix(service)
    unknown = set(env) - env_names(SETTINGS[service])
    assert not unknown, f"{service}: settings never read {sorted(unknown)}"
    required = {
        "SOTONG_KAFKA_BOOTSTRAP_SERVERS",
        "SOTONG_MONGO_URI",
        f"{prefix}HTTP_HOST",
        f"{prefix}HTTP_PORT",
    }
    assert required <= set(env), f"{service} lacks {sorted(required - set(env))}"


@pytest.mark.parametrize("service", SERVICES)
def test_compose_env_builds_settings_pointing_at_the_compose_backends(
    compose: dict[str, Any], service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from_env(service, compose_env(compose, service), monkeypatch)
    assert settings.http_host == "0.0.0.0"
    assert settings.http_port == default_port(service)
    assert settings.kafka.bootstrap_servers == COMPOSE_KAFKA
    assert settings.kafka.idempotent_producer is True, "Apache Kafka: keep idempotence on"
    uri = urlsplit(settings.mongo.uri.get_secret_value())
    assert uri.scheme == "mongodb"
    assert uri.netloc == COMPOSE_MONGO
    assert parse_qs(uri.query).get("replicaSet") == ["rs0"]


@pytest.mark.parametrize("service", SERVICES)
def test_compose_publishes_the_http_port(compose: dict[str, Any], service: str) -> None:
    spec = compose_service(compose, service)
    port = int(compose_env(compose, service)[f"{service_prefix(service)}HTTP_PORT"])
    assert port == default_port(service)
    assert published_ports(spec) == [(port, port)]


@pytest.mark.parametrize("service", SERVICES)
def test_compose_service_waits_for_healthy_backends_and_checks_readiness(
    compose: dict[str, Any], service: str
) -> None:
    spec = compose_service(compose, service)
    depends_on = as_mapping(spec.get("depends_on"), f"{service} depends_on")
    for backend in ("kafka", "mongo"):
        condition = as_mapping(depends_on.get(backend), f"{service} → {backend}")
        assert condition.get("condition") == "service_healthy"
    test = as_mapping(spec.get("healthcheck"), f"{service} healthcheck").get("test")
    command = " ".join(test) if isinstance(test, list) else str(test)
    assert "/readyz" in command
    assert service in command


def test_compose_services_share_the_same_backend_settings(compose: dict[str, Any]) -> None:
    shared = [
        {k: v for k, v in compose_env(compose, s).items() if not k.startswith(service_prefix(s))}
        for s in SERVICES
    ]
    assert all(env == shared[0] for env in shared), "the shared env block differs"
    assert shared[0]["SOTONG_KAFKA_IDEMPOTENT_PRODUCER"] == "true"


def test_compose_kafka_is_single_node_kraft_reachable_as_kafka_9092(
    compose: dict[str, Any],
) -> None:
    kafka = compose_service(compose, "kafka")
    assert kafka.get("image") == "apache/kafka:3.9.0"
    env = env_strings(kafka.get("environment"), "kafka environment")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    advertised = env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert any(listener.endswith("://" + COMPOSE_KAFKA) for listener in advertised)
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert "healthcheck" in kafka


def test_compose_mongo_is_a_replica_set_it_initiates_itself(compose: dict[str, Any]) -> None:
    mongo = compose_service(compose, "mongo")
    assert str(mongo.get("image")).startswith("mongo:8")
    command = [str(part) for part in as_list(mongo.get("command"), "mongo command")]
    assert "--replSet" in command
    replica_set = command[command.index("--replSet") + 1]
    for service in SERVICES:
        uri = urlsplit(compose_env(compose, service)["SOTONG_MONGO_URI"])
        assert parse_qs(uri.query).get("replicaSet") == [replica_set]
    check = " ".join(
        as_list(as_mapping(mongo.get("healthcheck"), "mongo healthcheck").get("test"), "test")
    )
    assert "rs.initiate" in check
    assert f"_id: '{replica_set}'" in check
    assert f"host: '{COMPOSE_MONGO}'" in check


def test_compose_notifier_outbox_is_on_a_volume(compose: dict[str, Any]) -> None:
    outbox = Path(compose_env(compose, "notifier")["SOTONG_NOTIFIER_OUTBOX_PATH"])
    volumes = as_list(compose_service(compose, "notifier").get("volumes"), "notifier volumes")
    targets = [Path(str(v).split(":")[1]) for v in volumes]
    assert any(outbox.is_relative_to(target) for target in targets)


# --- deploy/k8s ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests() -> dict[str, list[dict[str, Any]]]:
    files = sorted(K8S.glob("*.yaml")) + sorted(K8S.glob("*.yml"))
    assert files, "deploy/k8s has no manifests"
    return {path.name: load_all_yaml(path) for path in files}


def docs_of_kind(manifests: dict[str, list[dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    return [doc for docs in manifests.values() for doc in docs if doc.get("kind") == kind]


def the_one(manifests: dict[str, list[dict[str, Any]]], kind: str) -> dict[str, Any]:
    found = docs_of_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def kube_env(container: dict[str, Any]) -> dict[str, str]:
    entries = as_list(container.get("env", []), "container env")
    return {str(e["name"]): str(e["value"]) for e in entries if "value" in e}


def deployment_parts(
    manifests: dict[str, list[dict[str, Any]]], service: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(deployment, pod spec, the one container) of a service's file."""
    docs = manifests[f"{service}.yaml"]
    deployments = [doc for doc in docs if doc.get("kind") == "Deployment"]
    assert len(deployments) == 1, f"{service}.yaml must hold exactly one Deployment"
    deployment = deployments[0]
    pod = as_mapping(deployment["spec"]["template"]["spec"], f"{service} pod spec")
    containers = as_list(pod.get("containers"), f"{service} containers")
    assert len(containers) == 1, f"{service}: one container expected"
    return deployment, pod, as_mapping(containers[0], f"{service} container")


def container_port(container: dict[str, Any], ref: object) -> int:
    """Resolve a probe's or Service's port (a number or a container port's name)."""
    if isinstance(ref, int):
        return ref
    for port in as_list(container.get("ports"), "container ports"):
        if port.get("name") == ref:
            return int(port["containerPort"])
    raise AssertionError(f"no container port named {ref!r}")


def test_every_manifest_parses_as_kubernetes_objects(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    for name, docs in manifests.items():
        assert docs, f"{name} is empty"
        for doc in docs:
            assert doc.get("apiVersion"), f"{name}: a document without apiVersion"
            assert doc.get("kind"), f"{name}: a document without kind"
            if doc["kind"] != "Kustomization":
                assert as_mapping(doc.get("metadata"), f"{name} metadata").get("name")


def test_kustomization_applies_every_manifest_but_the_example_secret(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    resources = set(as_list(kustomization.get("resources"), "resources"))
    expected = set(manifests) - {"kustomization.yaml", "secret.example.yaml"}
    assert resources == expected
    assert {f"{service}.yaml" for service in SERVICES} | {"configmap.yaml"} <= resources


def test_there_is_one_deployment_per_service(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    run = sorted(
        str(deployment["spec"]["template"]["spec"]["containers"][0]["args"][0])
        for deployment in docs_of_kind(manifests, "Deployment")
    )
    assert run == sorted(RUNS)


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_runs_its_service_on_its_http_port(
    manifests: dict[str, list[dict[str, Any]]], service: str
) -> None:
    _, _, container = deployment_parts(manifests, service)
    assert container.get("args") == [service]
    build_parser().parse_args(["run", *container["args"]])
    env = kube_env(container)
    prefix = service_prefix(service)
    assert env[f"{prefix}HTTP_HOST"] == "0.0.0.0"
    port = int(env[f"{prefix}HTTP_PORT"])
    assert port == default_port(service)
    assert container_port(container, "http") == port


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_probes_liveness_on_healthz_and_readiness_on_readyz(
    manifests: dict[str, list[dict[str, Any]]], service: str
) -> None:
    _, _, container = deployment_parts(manifests, service)
    port = int(kube_env(container)[f"{service_prefix(service)}HTTP_PORT"])
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        http_get = as_mapping(
            as_mapping(container.get(probe), f"{service} {probe}").get("httpGet"), probe
        )
        assert http_get.get("path") == path, f"{service} {probe}"
        assert container_port(container, http_get.get("port")) == port, f"{service} {probe}"


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_has_a_matching_service_and_disruption_budget(
    manifests: dict[str, list[dict[str, Any]]], service: str
) -> None:
    deployment, _, container = deployment_parts(manifests, service)
    selector = as_mapping(deployment["spec"]["selector"]["matchLabels"], "selector")
    pod_labels = as_mapping(deployment["spec"]["template"]["metadata"]["labels"], "labels")
    assert selector.items() <= pod_labels.items()
    docs = manifests[f"{service}.yaml"]

    services = [doc for doc in docs if doc.get("kind") == "Service"]
    assert len(services) == 1, f"{service}.yaml must hold exactly one Service"
    assert services[0]["spec"]["selector"] == selector
    port = int(kube_env(container)[f"{service_prefix(service)}HTTP_PORT"])
    (service_port,) = as_list(services[0]["spec"]["ports"], "Service ports")
    assert service_port["port"] == port
    assert container_port(container, service_port.get("targetPort", port)) == port

    budgets = [doc for doc in docs if doc.get("kind") == "PodDisruptionBudget"]
    assert len(budgets) == 1, f"{service}.yaml must hold exactly one PodDisruptionBudget"
    assert budgets[0]["apiVersion"] == "policy/v1"
    assert budgets[0]["spec"]["selector"]["matchLabels"] == selector
    assert budgets[0]["spec"]["minAvailable"] == 1
    assert deployment["spec"]["replicas"] >= 2, "minAvailable 1 with one replica blocks drains"


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_is_non_root_bounded_and_scraped(
    manifests: dict[str, list[dict[str, Any]]], service: str
) -> None:
    deployment, pod, container = deployment_parts(manifests, service)
    security = as_mapping(pod.get("securityContext"), f"{service} securityContext")
    assert security.get("runAsNonRoot") is True
    assert security.get("runAsUser") == IMAGE_UID
    resources = as_mapping(container.get("resources"), f"{service} resources")
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(as_mapping(resources.get(bound), bound)), bound
    annotations = as_mapping(
        deployment["spec"]["template"]["metadata"].get("annotations"), "annotations"
    )
    assert annotations.get("prometheus.io/scrape") == "true"
    assert annotations.get("prometheus.io/path") == "/metrics"
    assert annotations.get("prometheus.io/port") == str(default_port(service))


@pytest.fixture(scope="module")
def configmap(manifests: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    config = the_one(manifests, "ConfigMap")
    assert config["metadata"]["name"] == CONFIGMAP_NAME
    return {str(k): str(v) for k, v in as_mapping(config.get("data"), "data").items()}


@pytest.fixture(scope="module")
def secret_example(manifests: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    (secret,) = [doc for doc in manifests["secret.example.yaml"] if doc.get("kind") == "Secret"]
    return secret


def test_configmap_holds_shared_non_secret_settings_every_service_reads(
    configmap: dict[str, str],
) -> None:
    shared = set.intersection(*(env_names(cls) for cls in SETTINGS.values()))
    assert set(configmap) <= shared, f"not read by every service: {set(configmap) - shared}"
    assert configmap["SOTONG_KAFKA_BOOTSTRAP_SERVERS"] == K8S_KAFKA_PLACEHOLDER
    assert configmap["SOTONG_KAFKA_IDEMPOTENT_PRODUCER"] == "true"
    secret_names = {"SOTONG_MONGO_URI", "SOTONG_KAFKA_SASL_PASSWORD"}
    assert not secret_names & set(configmap), "secrets belong in the Secret"


def test_secret_example_carries_the_mongo_replica_set_uri(
    secret_example: dict[str, Any],
) -> None:
    data = as_mapping(secret_example.get("stringData"), "stringData")
    shared = set.intersection(*(env_names(cls) for cls in SETTINGS.values()))
    assert set(data) <= shared
    uri = urlsplit(str(data["SOTONG_MONGO_URI"]))
    assert uri.scheme == "mongodb"
    assert parse_qs(uri.query).get("replicaSet"), "point at the replica set"


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_env_comes_from_the_configmap_and_secret_and_builds_settings(
    manifests: dict[str, list[dict[str, Any]]],
    configmap: dict[str, str],
    secret_example: dict[str, Any],
    service: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, _, container = deployment_parts(manifests, service)
    sources = as_list(container.get("envFrom"), f"{service} envFrom")
    assert {"configMapRef": {"name": CONFIGMAP_NAME}} in sources
    assert {"secretRef": {"name": secret_example["metadata"]["name"]}} in sources
    own = kube_env(container)
    unknown = set(own) - env_names(SETTINGS[service])
    assert not unknown, f"{service}: settings never read {sorted(unknown)}"

    secret = {str(k): str(v) for k, v in secret_example["stringData"].items()}
    settings = settings_from_env(service, {**configmap, **secret, **own}, monkeypatch)
    assert settings.http_host == "0.0.0.0"
    assert settings.http_port == container_port(container, "http")
    assert settings.kafka.bootstrap_servers == K8S_KAFKA_PLACEHOLDER
    assert settings.kafka.idempotent_producer is True
    assert settings.mongo.uri.get_secret_value() == secret["SOTONG_MONGO_URI"]


def test_notifier_outbox_is_on_an_empty_dir(manifests: dict[str, list[dict[str, Any]]]) -> None:
    _, pod, container = deployment_parts(manifests, "notifier")
    outbox = Path(kube_env(container)["SOTONG_NOTIFIER_OUTBOX_PATH"])
    empty_dirs = {v["name"] for v in as_list(pod.get("volumes"), "volumes") if "emptyDir" in v}
    mounts = [
        Path(m["mountPath"])
        for m in as_list(container.get("volumeMounts"), "volumeMounts")
        if m["name"] in empty_dirs
    ]
    assert any(outbox.is_relative_to(mount) for mount in mounts)


# --- Dockerfile, .dockerignore, pyproject ---------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def exec_form(instructions: list[tuple[str, str]], keyword: str) -> list[str]:
    values = [args for kw, args in instructions if kw == keyword]
    assert values, f"no {keyword} in the Dockerfile's final stage"
    parsed = json.loads(values[-1])
    assert isinstance(parsed, list), f"{keyword} must use the exec (JSON) form"
    return [str(part) for part in parsed]


def test_dockerfile_entrypoint_is_sotong_run_with_a_service_as_command() -> None:
    stage = final_stage()
    assert exec_form(stage, "ENTRYPOINT") == ["sotong", "run"]
    command = exec_form(stage, "CMD")
    assert len(command) == 1
    assert command[0] in SERVICES
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert scripts["project"]["scripts"]["sotong"] == "sotong.cli:main"


def test_dockerfile_runtime_is_python_311_slim_as_the_non_root_uid() -> None:
    stage = final_stage()
    base = stage[0][1].split()[0]
    assert base in {"python:3.11-slim", "python:${PYTHON_VERSION}-slim"}
    if "${PYTHON_VERSION}" in base:
        args = [a for kw, a in dockerfile_instructions() if kw == "ARG"]
        assert "PYTHON_VERSION=3.11" in args
    users = [args for keyword, args in stage if keyword == "USER"]
    assert users, "the image must not run as root"
    assert users[-1].split(":")[0] == str(IMAGE_UID)


def test_dockerfile_installs_the_locked_runtime_dependencies_only() -> None:
    syncs = [args for kw, args in dockerfile_instructions() if kw == "RUN" and "uv sync" in args]
    assert syncs, "the image installs nothing with uv"
    for command in syncs:
        for flag in ("--frozen", "--no-default-groups", "--no-dev"):
            assert flag in command.split(), f"{flag} missing from: {command}"
        for flag in ("--group", "--all-groups", "--only-group", "--extra", "--all-extras"):
            assert flag not in command.split(), f"{flag} in: {command}"


def test_dockerfile_healthcheck_calls_healthz_with_the_shipped_script() -> None:
    stage = final_stage()
    (check,) = [args for keyword, args in stage if keyword == "HEALTHCHECK"]
    assert "/healthz" in check
    copies = [args.split() for keyword, args in stage if keyword == "COPY"]
    script_copies = [c for c in copies if "deploy/docker/healthcheck.py" in c]
    assert script_copies, "the health-check script is not copied into the image"
    assert script_copies[0][-1] in check
    assert HEALTHCHECK_SCRIPT.is_file()


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and line[0] != "#"]


def ignored(path: str, patterns: list[str]) -> bool:
    parts = Path(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatch(candidate, pattern.removeprefix("**/"))
        or fnmatch.fnmatch(Path(candidate).name, pattern.removeprefix("**/"))
        for pattern in patterns
        if not pattern.startswith("!")
        for candidate in candidates
    )


def test_dockerignore_keeps_local_state_out_and_what_is_copied_in() -> None:
    patterns = dockerignore_patterns()
    for local in (".venv", ".tools", "var", ".git", ".mypy_cache", ".pytest_cache"):
        assert ignored(local, patterns), f".dockerignore lets {local} into the build"
    sources = [
        source
        for keyword, args in dockerfile_instructions()
        if keyword == "COPY" and "--from=" not in args
        for source in [w for w in args.split() if not w.startswith("--")][:-1]
    ]
    assert "uv.lock" in sources
    for source in sources:
        assert (ROOT / source).exists(), f"the Dockerfile copies a missing {source}"
        assert not ignored(source, patterns), f".dockerignore drops {source}"


# --- the image's health-check script -------------------------------------------------


@pytest.fixture(scope="module")
def healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sotong_healthcheck", HEALTHCHECK_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response({"/healthz": 200, "/readyz": 503}.get(self.path, 404))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def local_service() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_healthcheck_default_ports_are_the_settings_defaults(healthcheck: ModuleType) -> None:
    ports: object = healthcheck.DEFAULT_PORTS
    portal = PortalSettings.model_fields["http_port"].default
    assert ports == {s: default_port(s) for s in SERVICES} | {"portal": portal}


@pytest.mark.parametrize(
    ("argv", "service"),
    [
        (["python", "/opt/sotong/venv/bin/sotong", "run", "tracker"], "tracker"),
        (["/sbin/docker-init", "--", "sotong", "run", "notifier"], "notifier"),
        (["python3", "-m", "http.server"], None),
    ],
)
def test_healthcheck_finds_the_service_pid_1_runs(
    healthcheck: ModuleType, argv: list[str], service: str | None
) -> None:
    assert healthcheck.service_from_argv(argv) == service


def test_healthcheck_url_follows_the_service_settings(healthcheck: ModuleType) -> None:
    url = healthcheck.health_url
    assert url("routing", "/healthz", {}) == "http://127.0.0.1:8002/healthz"
    env = {"SOTONG_ROUTING_HTTP_HOST": "0.0.0.0", "SOTONG_ROUTING_HTTP_PORT": "9102"}
    assert url("routing", "/readyz", env) == "http://127.0.0.1:9102/readyz"
    assert url("tracker", "healthz", {"SOTONG_TRACKER_HTTP_HOST": "10.1.2.3"}) == (
        "http://10.1.2.3:8003/healthz"
    )
    assert url("notifier", "/healthz", {"SOTONG_NOTIFIER_HTTP_HOST": "::1"}) == (
        "http://[::1]:8004/healthz"
    )


@pytest.mark.service  # a real HTTP server on a port
def test_healthcheck_passes_on_200_only(healthcheck: ModuleType, local_service: int) -> None:
    env = {"SOTONG_INTAKE_HTTP_PORT": str(local_service)}
    assert healthcheck.main(["/healthz", "intake"], env) == 0
    assert healthcheck.main(["/readyz", "intake"], env) == 1
    assert healthcheck.main(["/healthz", "nobody"], env) == 2
    server_gone = {"SOTONG_INTAKE_HTTP_PORT": "1"}
    assert healthcheck.main(["/healthz", "intake"], server_gone) == 1


# --- API keys from secrets: a fresh deployment accepts department commands ------------


def compose_key_problems(compose: dict[str, Any]) -> list[str]:
    """What keeps the compose services from reading the keys ``sotong keys generate``
    writes: a missing compose secret, a wrong file, a wrong target, no secrets directory."""
    problems = []
    declared = as_mapping(compose.get("secrets") or {}, "compose secrets")
    for service, variables in keys.VARIABLES.items():
        env = compose_env(compose, service)
        if env.get(SECRETS_DIR_VARIABLE) != "/run/secrets":
            problems.append(f"{service}: {SECRETS_DIR_VARIABLE} is not /run/secrets")
        mounted = {
            str(entry.get("target")): str(entry.get("source"))
            for entry in as_list(compose_service(compose, service).get("secrets") or [], "secrets")
            if isinstance(entry, dict)
        }
        for variable, file in variables.items():
            source = mounted.get(variable)
            if source is None:
                problems.append(f"{service}: no secret mounted as {variable}")
                continue
            spec = declared.get(source)
            wanted = f"./deploy/secrets/{file}"
            if not isinstance(spec, dict) or spec.get("file") != wanted:
                problems.append(f"{service}: secret {source!r} is not the file {wanted}")
    return problems


def kube_key_problems(manifests: dict[str, list[dict[str, Any]]]) -> list[str]:
    problems = []
    for service, variables in keys.VARIABLES.items():
        _, _, container = deployment_parts(manifests, service)
        refs = {
            str(e["name"]): e["valueFrom"]["secretKeyRef"]
            for e in as_list(container.get("env", []), "env")
            if "secretKeyRef" in (e.get("valueFrom") or {})
        }
        for variable, file in variables.items():
            ref = refs.get(variable)
            if ref is None:
                problems.append(f"{service}: {variable} is not from a Secret")
            elif ref.get("name") != keys.SECRET_NAME or ref.get("key") != file:
                problems.append(f"{service}: {variable} is not {keys.SECRET_NAME}/{file}")
            elif ref.get("optional"):
                problems.append(f"{service}: {variable} is optional: it would start keyless")
    return problems


def test_compose_mounts_the_generated_keys_as_each_setting(compose: dict[str, Any]) -> None:
    assert compose_key_problems(compose) == []


def test_a_compose_file_without_the_key_secrets_fails_the_check(compose: dict[str, Any]) -> None:
    without_mounts = json.loads(json.dumps(compose))
    for service in keys.VARIABLES:
        without_mounts["services"][service].pop("secrets")
    assert len(compose_key_problems(without_mounts)) == sum(map(len, keys.VARIABLES.values()))
    without_files = {k: v for k, v in compose.items() if k != "secrets"}
    assert compose_key_problems(without_files)


def test_kubernetes_reads_every_key_from_the_sotong_keys_secret(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    assert kube_key_problems(manifests) == []


def test_manifests_without_the_key_secret_fail_the_check(
    manifests: dict[str, list[dict[str, Any]]],
) -> None:
    stripped = json.loads(json.dumps(manifests))
    for service in keys.VARIABLES:
        for doc in stripped[f"{service}.yaml"]:
            if doc.get("kind") == "Deployment":
                container = doc["spec"]["template"]["spec"]["containers"][0]
                container["env"] = [e for e in container["env"] if "valueFrom" not in e]
    assert len(kube_key_problems(stripped)) == sum(map(len, keys.VARIABLES.values()))


def assert_keys_work(settings: dict[str, ServiceSettings], directory: Path) -> None:
    """Every department has its key in intake and tracker alike; intake reads the tracker
    with a staff key the tracker knows; Open311 apps have theirs."""
    intake, tracker = settings["intake"], settings["tracker"]
    assert isinstance(intake, IntakeSettings)
    assert isinstance(tracker, TrackerSettings)
    departments = json.loads((directory / keys.DEPARTMENT_KEYS).read_text())
    assert set(departments) == set(catalogue().codes)
    for held in (intake.api_keys, tracker.api_keys):
        assert {d: k.get_secret_value() for d, k in held.items()} == departments
    assert intake.tracker_api_key is not None
    staff = {k.get_secret_value() for k in tracker.staff_api_keys.values()}
    assert intake.tracker_api_key.get_secret_value() in staff
    apps = json.loads((directory / keys.OPEN311_KEYS).read_text())
    assert {a: k.get_secret_value() for a, k in intake.open311_keys.items()} == apps
    assert apps, "an Open311 app was asked for"


def test_compose_services_read_the_generated_keys(
    compose: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generated = tmp_path / "secrets"
    keys.generate(generated, ["civic-app"])
    declared = as_mapping(compose["secrets"], "compose secrets")
    built: dict[str, ServiceSettings] = {}
    for service in keys.VARIABLES:
        run_secrets = tmp_path / service / "run-secrets"  # what compose mounts
        run_secrets.mkdir(parents=True)
        for entry in compose_service(compose, service)["secrets"]:
            file = Path(declared[entry["source"]]["file"]).name
            (run_secrets / entry["target"]).write_bytes((generated / file).read_bytes())
        env = compose_env(compose, service) | {SECRETS_DIR_VARIABLE: str(run_secrets)}
        built[service] = settings_from_env(service, env, monkeypatch)
    assert_keys_work(built, generated)


def test_kubernetes_services_read_the_generated_keys(
    manifests: dict[str, list[dict[str, Any]]],
    configmap: dict[str, str],
    secret_example: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys.generate(tmp_path, ["civic-app"])
    secret = keys.k8s_secret(tmp_path)
    assert secret["metadata"]["name"] == keys.SECRET_NAME
    data = as_mapping(secret["stringData"], "stringData")
    built: dict[str, ServiceSettings] = {}
    for service in keys.VARIABLES:
        _, _, container = deployment_parts(manifests, service)
        from_secret = {
            str(e["name"]): str(data[e["valueFrom"]["secretKeyRef"]["key"]])
            for e in container["env"]
            if "secretKeyRef" in (e.get("valueFrom") or {})
        }
        env = {**configmap, **secret_example["stringData"], **kube_env(container), **from_secret}
        built[service] = settings_from_env(service, env, monkeypatch)
    assert_keys_work(built, tmp_path)


def test_generating_keys_again_keeps_them_and_adds_what_is_new(tmp_path: Path) -> None:
    keys.generate(tmp_path)
    first = {f: (tmp_path / f).read_text() for f in keys.FILES}
    assert oct(tmp_path.stat().st_mode & 0o777) == "0o700"
    departments = json.loads(first[keys.DEPARTMENT_KEYS])
    dropped = sorted(departments)[0]
    del departments[dropped]  # as if the catalogue had gained a department since
    (tmp_path / keys.DEPARTMENT_KEYS).write_text(json.dumps(departments))

    changed = keys.generate(tmp_path, ["civic-app"])
    assert changed[keys.DEPARTMENT_KEYS] == f"added {dropped}"
    again = json.loads((tmp_path / keys.DEPARTMENT_KEYS).read_text())
    assert {d: k for d, k in again.items() if d != dropped} == departments
    assert json.loads((tmp_path / keys.STAFF_KEYS).read_text()) == json.loads(
        first[keys.STAFF_KEYS]
    )
    assert set(json.loads((tmp_path / keys.OPEN311_KEYS).read_text())) == {"civic-app"}
    assert keys.generate(tmp_path, ["civic-app"]) == {}
    assert len(set(again.values())) == len(again), "every department its own key"


def test_the_notifier_is_mounted_the_staff_directory_the_district_fills_in(
    compose: dict[str, Any], manifests: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    keys.generate(tmp_path)
    assert json.loads((tmp_path / keys.STAFF_CONTACTS).read_text()) == {"staff": {}}
    filled = {"staff": {"roads-1": {"mobile": "010-0000-5101", "email": "roads@x.invalid"}}}
    (tmp_path / keys.STAFF_CONTACTS).write_text(json.dumps(filled))
    keys.generate(tmp_path)  # again: what the district entered is kept
    assert json.loads((tmp_path / keys.STAFF_CONTACTS).read_text()) == filled

    variable = "SOTONG_NOTIFIER_STAFF_DIRECTORY_PATH"
    path = PurePosixPath(compose_env(compose, "notifier")[variable])
    mounts = {
        str(e["target"]): str(e["source"])
        for e in compose_service(compose, "notifier")["secrets"]
        if isinstance(e, dict)
    }
    assert path.parent == PurePosixPath("/run/secrets")
    source = mounts[path.name]
    assert compose["secrets"][source]["file"] == f"./deploy/secrets/{keys.STAFF_CONTACTS}"

    _, pod, container = deployment_parts(manifests, "notifier")
    path = PurePosixPath(kube_env(container)[variable])
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent)]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == keys.SECRET_NAME
    assert {"key": keys.STAFF_CONTACTS, "path": path.name} in volume["secret"]["items"]
    assert keys.STAFF_CONTACTS in keys.k8s_secret(tmp_path)["stringData"]


def test_compose_services_send_traces_to_the_jaeger_it_runs(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    jaeger = compose_service(compose, "jaeger")
    assert str(jaeger.get("image")).startswith("jaegertracing/all-in-one:")
    assert env_strings(jaeger.get("environment"), "jaeger")["COLLECTOR_OTLP_ENABLED"] == "true"
    assert (16686, 16686) in published_ports(jaeger)
    for service in SERVICES:
        settings = settings_from_env(service, compose_env(compose, service), monkeypatch)
        assert settings.telemetry.enabled
        endpoint = urlsplit(str(settings.telemetry.exporter_otlp_endpoint))
        assert (endpoint.hostname, endpoint.port) == ("jaeger", 4318)  # OTLP over HTTP


def test_kubernetes_tracing_is_off_until_a_collector_is_named(configmap: dict[str, str]) -> None:
    assert configmap["SOTONG_OTEL_EXPORTER_OTLP_ENDPOINT"] == ""


# --- the portal: a channel beside the services ----------------------------------------

PORTAL_READS = env_names(PortalSettings) | env_names(ChatbotSettings) | {SECRETS_DIR_VARIABLE}


def portal_settings(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> tuple[PortalSettings, ChatbotSettings]:
    for name in PORTAL_READS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return PortalSettings(), ChatbotSettings()


def test_compose_runs_the_portal_against_the_services_it_calls(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = compose_service(compose, "portal")
    assert spec.get("build") == "."
    assert spec.get("command") == ["portal"]
    env = compose_env(compose, "portal")
    assert set(env) <= PORTAL_READS, sorted(set(env) - PORTAL_READS)
    portal, bot = portal_settings(env, monkeypatch)
    assert (portal.intake_url, portal.tracker_url) == ("http://intake:8001", "http://tracker:8003")
    assert (bot.routing_url, bot.intake_url) == ("http://routing:8002", "http://intake:8001")
    assert portal.mongo.uri.get_secret_value().startswith(f"mongodb://{COMPOSE_MONGO}/")
    assert portal.mongo.database == compose_env(compose, "intake")["SOTONG_MONGO_DATABASE"]
    assert (portal.http_host, portal.http_port) == ("0.0.0.0", 8005)
    assert (8005, 8005) in published_ports(spec)
    depends = as_mapping(spec.get("depends_on"), "portal depends_on")
    assert {d: depends[d]["condition"] for d in ("mongo", "intake", "tracker")} == dict.fromkeys(
        ("mongo", "intake", "tracker"), "service_healthy"
    )
    assert spec["healthcheck"]["test"][-2:] == ["/readyz", "portal"]
    assert portal.telemetry.exporter_otlp_endpoint == "http://jaeger:4318"  # a filing's trace


def test_kubernetes_runs_the_portal_against_the_services_it_calls(
    manifests: dict[str, list[dict[str, Any]]],
    configmap: dict[str, str],
    secret_example: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, pod, container = deployment_parts(manifests, "portal")
    assert container.get("args") == ["portal"]
    env = {**configmap, **secret_example["stringData"], **kube_env(container)}
    portal, bot = portal_settings({k: v for k, v in env.items() if k in PORTAL_READS}, monkeypatch)
    services = {
        str(doc["metadata"]["name"]): doc["spec"]["ports"][0]["port"]
        for doc in docs_of_kind(manifests, "Service")
    }
    for url in (portal.intake_url, portal.tracker_url, bot.routing_url, bot.intake_url):
        host, port = urlsplit(url).hostname, urlsplit(url).port
        assert services.get(str(host)) == port, f"{url} is not a Service of the manifests"
    assert portal.http_port == container_port(container, "http") == 8005
    assert pod["securityContext"]["runAsUser"] == IMAGE_UID
    limits = container["resources"]["limits"]
    assert limits["memory"].endswith("Mi")
    assert int(limits["memory"].removesuffix("Mi")) >= 512  # the chatbot's tokenizer
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "sotong-portal" in services


def test_the_portal_files_with_its_share_of_the_channel_credentials(
    compose: dict[str, Any],
    manifests: dict[str, list[dict[str, Any]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Compose and Kubernetes give the portal the web and chatbot credentials intake knows
    (and the tracker the web one), the Kakao skill the kakao one, and nothing else."""
    keys.generate(tmp_path)
    channels = json.loads((tmp_path / keys.CHANNEL_KEYS).read_text())
    declared = as_mapping(compose["secrets"], "compose secrets")
    run_secrets = tmp_path / "portal-run-secrets"
    run_secrets.mkdir()
    for entry in compose_service(compose, "portal")["secrets"]:
        file = Path(declared[entry["source"]]["file"]).name
        (run_secrets / entry["target"]).write_bytes((tmp_path / file).read_bytes())
    env = compose_env(compose, "portal") | {SECRETS_DIR_VARIABLE: str(run_secrets)}
    portal, bot = portal_settings(env, monkeypatch)
    held = {c: k.get_secret_value() for c, k in portal.intake_keys.items()}
    assert held == {c: channels[c] for c in ("web", "chatbot")}
    assert portal.tracker_key is not None
    assert portal.tracker_key.get_secret_value() == channels["web"]
    assert bot.intake_api_key is not None
    assert bot.intake_api_key.get_secret_value() == channels["kakao"]

    _, _, container = deployment_parts(manifests, "portal")
    refs = {
        str(e["name"]): e["valueFrom"]["secretKeyRef"]
        for e in container["env"]
        if "secretKeyRef" in (e.get("valueFrom") or {})
    }
    assert {v: (r["name"], r["key"]) for v, r in refs.items()} == {
        v: (keys.SECRET_NAME, f) for v, f in keys.PORTAL_VARIABLES.items()
    }
    assert set(keys.PORTAL_VARIABLES.values()) <= set(keys.k8s_secret(tmp_path)["stringData"])
