"""docker-compose.yml is a valid Compose file whose topology matches the native stack.

No Docker engine is needed: the file is validated against the Compose Specification's JSON schema
(tests/fixtures/compose-spec.json), then checked for what a user would trip over at `docker compose up`.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

from cdc import connect
from cdc.config import SERVICES, StackSettings
from mirador.cli import main

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SCHEMA_FILE = ROOT / "tests" / "fixtures" / "compose-spec.json"

# `${NAME}`, `${NAME:-default}` and `${NAME-default}`, as Compose interpolates them.
VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<sep>:?-)(?P<default>[^}]*))?\}")


def interpolate(value, missing: list[str]):
    """The file as `docker compose` sees it with no variable set: every `${...}` replaced by its default."""
    if isinstance(value, dict):
        return {key: interpolate(item, missing) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, missing) for item in value]
    if isinstance(value, str):
        def default(match: re.Match) -> str:
            if match["sep"] is None:
                missing.append(match["name"])
                return ""
            return match["default"]
        return VARIABLE.sub(default, value)
    return value


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def compose(raw) -> dict:
    return interpolate(raw, [])


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft201909Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    # The vendored schema declares draft 2019-09; validate with exactly that draft.
    assert "2019-09" in schema["$schema"]
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def errors(validator, document: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator.iter_errors(document)]


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def command(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def depends_on(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: spec["condition"] for name, spec in deps.items()}


def is_one_shot(service: dict) -> bool:
    """A job that runs to completion says so with `restart: "no"`; everything else is long-running."""
    return service.get("restart") == "no"


# -- The Compose Specification -----------------------------------------------------------------------

def test_the_file_is_valid_under_the_compose_specification(validator, compose):
    assert errors(validator, compose) == []


def test_every_variable_has_a_default_so_it_runs_without_a_dot_env(raw):
    missing: list[str] = []
    interpolate(raw, missing)
    assert missing == [], f"variables without a default: {missing}"


@pytest.mark.parametrize("breakage", [
    "unknown top-level key",
    "bad depends_on condition",
    "unknown healthcheck key",
    "command of the wrong type",
])
def test_the_schema_rejects_a_broken_file(validator, compose, breakage):
    broken = copy.deepcopy(compose)
    register = broken["services"]["register"]
    if breakage == "unknown top-level key":
        broken["servicez"] = {}
    elif breakage == "bad depends_on condition":
        register["depends_on"]["connect"]["condition"] = "service_ready"
    elif breakage == "unknown healthcheck key":
        broken["services"]["postgres"]["healthcheck"]["intervall"] = "5s"
    elif breakage == "command of the wrong type":
        register["command"] = {"mirador": "stack up"}
    assert errors(validator, broken), f"a file with a {breakage} passed validation"


# -- What `docker compose up` needs ------------------------------------------------------------------

def test_dependencies_exist_and_can_reach_their_condition(services):
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            assert target in services, f"{name} depends on {target}, which is not a service"
            dependency = services[target]
            if condition == "service_healthy":
                check = dependency.get("healthcheck") or {}
                assert check.get("test") and not check.get("disable"), \
                    f"{name} waits for {target} to be healthy, but {target} has no healthcheck"
            if condition == "service_completed_successfully":
                assert is_one_shot(dependency), f"{name} waits for {target} to exit, but it is long-running"


def test_every_long_running_service_has_a_healthcheck_and_waits_for_its_dependencies(services):
    for name, service in services.items():
        if not is_one_shot(service):
            assert (service.get("healthcheck") or {}).get("test"), f"{name} has no healthcheck"
        for target, condition in depends_on(service).items():
            assert condition != "service_started", f"{name} only waits for {target} to start"


def test_every_build_context_has_its_dockerfile(services):
    built = {name: s["build"] for name, s in services.items() if "build" in s}
    assert built, "no service is built from the repository"
    for name, build in built.items():
        context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        assert (context / dockerfile).is_file(), f"{name}: no {dockerfile} in {context}"


def test_images_are_pinned_to_a_version(services):
    for name, service in services.items():
        image = service.get("image")
        if image is None:
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: image {image} has no tag"
        assert tag != "latest", f"{name}: image {image} is not pinned"
        if "build" not in service:
            assert re.search(r"\d", tag), f"{name}: image {image} is not pinned to a version"


# -- The same topology as the native stack -----------------------------------------------------------

def pom_version(prop: str) -> str:
    return re.search(rf"<{prop}>([^<]+)</{prop}>", (ROOT / "cdc" / "pom.xml").read_text())[1]


def test_connect_runs_the_debezium_version_of_the_native_stack(services):
    image = services["connect"]["image"]
    assert re.fullmatch(r"quay\.io/debezium/connect:3\.6\.\d+\.Final", image)
    assert image.endswith(":" + pom_version("debezium.version"))


def test_kafka_is_the_version_of_the_native_stack_in_kraft_mode(services):
    kafka = services["kafka"]
    assert kafka["image"] == "apache/kafka:" + pom_version("kafka.version")
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert env["CLUSTER_ID"]


def test_postgres_writes_logical_wal_for_every_connector(services):
    args = command(services["postgres"])
    settings = dict(arg.split("=", 1) for arg in args if "=" in arg)
    assert args[0] == "postgres"
    assert settings["wal_level"] == "logical"
    assert int(settings["max_replication_slots"]) >= len(SERVICES)
    assert int(settings["max_wal_senders"]) >= len(SERVICES)
    assert settings["max_slot_wal_keep_size"] == StackSettings().pg_max_slot_wal_keep_size


def test_connect_worker_matches_the_native_worker(services):
    native = dict(line.split("=", 1) for line in connect.WORKER_PROPERTIES.splitlines()
                  if "=" in line and not line.startswith("#"))
    env = environment(services["connect"])
    # The Debezium image's entrypoint maps these variables to worker properties.
    effective = {
        "bootstrap.servers": env["BOOTSTRAP_SERVERS"],
        "group.id": env["GROUP_ID"],
        "config.storage.topic": env["CONFIG_STORAGE_TOPIC"],
        "offset.storage.topic": env["OFFSET_STORAGE_TOPIC"],
        "status.storage.topic": env["STATUS_STORAGE_TOPIC"],
        "key.converter": env["KEY_CONVERTER"],
        "value.converter": env["VALUE_CONVERTER"],
        "offset.flush.interval.ms": env["OFFSET_FLUSH_INTERVAL_MS"],
    }
    effective.update({key.removeprefix("CONNECT_").lower().replace("_", "."): value
                      for key, value in env.items() if key.startswith("CONNECT_")})
    for key in ("group.id", "config.storage.topic", "offset.storage.topic", "status.storage.topic",
                "key.converter", "value.converter", "key.converter.schemas.enable",
                "value.converter.schemas.enable", "offset.flush.interval.ms",
                "scheduled.rebalance.max.delay.ms", "producer.compression.type", "producer.batch.size"):
        assert effective[key] == native[key], f"connect: {key} is {effective[key]!r}, natively {native[key]!r}"
    assert effective["bootstrap.servers"] == "kafka:9092"
    # The entrypoint overwrites this one from OFFSET_FLUSH_INTERVAL_MS: setting it would do nothing.
    assert "CONNECT_OFFSET_FLUSH_INTERVAL_MS" not in env


def test_register_job_brings_its_own_servers_and_registers_the_connectors(services):
    register = services["register"]
    assert command(register) == ["mirador", "stack", "up"]
    assert main.get_command(None, "stack").commands["up"] is not None
    assert str(register["restart"]) == "no"
    env = environment(register)
    # All three set: `stack up` only bootstraps the databases and registers the connectors.
    assert env["MIRADOR_PG_DSN"].startswith("postgresql://postgres:")
    assert "@postgres:5432/" in env["MIRADOR_PG_DSN"]
    assert env["MIRADOR_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["MIRADOR_CONNECT_URL"] == "http://connect:8083"
    assert (env["MIRADOR_CONNECT_PG_HOST"], env["MIRADOR_CONNECT_PG_PORT"]) == ("postgres", "5432")
    fields = set(StackSettings.model_fields)
    for key in env:
        assert key.removeprefix("MIRADOR_").lower() in fields, f"register: {key} is not a mirador setting"
    assert depends_on(register) == {name: "service_healthy" for name in ("postgres", "kafka", "connect")}
    assert [path.is_file() for path in connect.connector_files()] == [True] * len(SERVICES)


def test_the_superuser_password_is_the_same_on_both_sides(raw):
    password = raw["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert f"postgres:{password}@postgres" in raw["services"]["register"]["environment"]["MIRADOR_PG_DSN"]


def test_the_image_is_small_and_runs_unprivileged():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    assert re.search(r"^USER (?!root\b)\S+$", dockerfile, re.M)
    # Dependencies are installed before the source is copied, so code edits reuse that layer.
    assert dockerfile.index("COPY pyproject.toml") < dockerfile.index("COPY . .")
    # With the versions CI tests, not whatever is newest on the day of the build.
    assert "-c constraints.txt" in dockerfile and (ROOT / "constraints.txt").is_file()
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".mirador", ".env", "tests", "dbt_project/target"} <= ignored
