"""docker-compose.yml is a valid Compose file whose topology matches the native stack.

No Docker engine is needed: the file is validated against the Compose Specification's JSON schema
(tests/fixtures/compose-spec.json), then checked for what a user would trip over at `docker compose up`:
each container of our image runs a real command in the foreground and is given only settings that
command reads, every port is published where the native one listens, the read API reads only what the
pipeline publishes. Each check is also run against a broken copy of the file, to see it object.
"""

from __future__ import annotations

import asyncio
import copy
import fnmatch
import importlib
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import click
import httpx
import jsonschema
import psycopg.conninfo
import pytest
import yaml
from pydantic import AliasChoices, SecretStr
from pydantic_settings import BaseSettings
from uvicorn.main import main as uvicorn_cli

from api.configuration import ApiSettings
from cdc import connect
from cdc.config import SERVICES, StackSettings
from mirador.cli import main
from services import runner

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
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(document)]


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


@pytest.mark.parametrize(
    "breakage",
    [
        "unknown top-level key",
        "bad depends_on condition",
        "unknown healthcheck key",
        "command of the wrong type",
    ],
)
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
                assert check.get("test") and not check.get("disable"), (
                    f"{name} waits for {target} to be healthy, but {target} has no healthcheck"
                )
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


CONNECT_IMAGE = re.compile(r"quay\.io/debezium/connect:.*")


def connect_workers(compose: dict) -> dict[str, dict]:
    """The Kafka Connect workers: every service of the Debezium Connect image."""
    return {name: s for name, s in compose["services"].items() if CONNECT_IMAGE.fullmatch(s.get("image", ""))}


def worker_properties(env: dict[str, str]) -> dict[str, str]:
    """The worker properties the Debezium image's entrypoint writes from a container's environment."""
    effective = {
        "bootstrap.servers": env.get("BOOTSTRAP_SERVERS"),
        "group.id": env.get("GROUP_ID"),
        "config.storage.topic": env.get("CONFIG_STORAGE_TOPIC"),
        "offset.storage.topic": env.get("OFFSET_STORAGE_TOPIC"),
        "status.storage.topic": env.get("STATUS_STORAGE_TOPIC"),
        "key.converter": env.get("KEY_CONVERTER"),
        "value.converter": env.get("VALUE_CONVERTER"),
        "offset.flush.interval.ms": env.get("OFFSET_FLUSH_INTERVAL_MS"),
    }
    effective.update(
        {
            key.removeprefix("CONNECT_").lower().replace("_", "."): value
            for key, value in env.items()
            if key.startswith("CONNECT_")
        }
    )
    # ADVERTISED_HOST_NAME overwrites CONNECT_REST_ADVERTISED_HOST_NAME; unset, it is the container's IP.
    effective["rest.advertised.host.name"] = env.get("ADVERTISED_HOST_NAME")
    return effective


def native_worker_properties() -> dict[str, str]:
    defaults = {"group": StackSettings.model_fields["connect_group"].default, "bootstrap": "", "port": ""}
    text = connect.WORKER_PROPERTIES.format(plugin_path="", **defaults)
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


SAME_AS_NATIVE = (
    "group.id",
    "config.storage.topic",
    "offset.storage.topic",
    "status.storage.topic",
    "key.converter",
    "value.converter",
    "key.converter.schemas.enable",
    "value.converter.schemas.enable",
    "offset.flush.interval.ms",
    "scheduled.rebalance.max.delay.ms",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "producer.compression.type",
    "producer.batch.size",
)


def test_connect_workers_match_the_native_workers(services):
    native = native_worker_properties()
    workers = connect_workers({"services": services})
    assert list(workers) == ["connect", "connect-2"]
    for name, worker in workers.items():
        env = environment(worker)
        effective = worker_properties(env)
        for key in SAME_AS_NATIVE:
            assert effective[key] == native[key], f"{name}: {key} is {effective[key]!r}, natively {native[key]!r}"
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
    assert depends_on(register) == {name: "service_healthy" for name in ("postgres", "kafka", "connect", "connect-2")}
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


# -- Our containers: real commands in the foreground, given only the settings they read ---------------

PAGE_ORIGINS = {"http://127.0.0.1:8100", "http://localhost:8100"}
"""Where a browser opens the read API's page (published on 127.0.0.1:8100), which sends the orders."""


def pipeline_settings() -> type[BaseSettings]:
    # The pipeline's settings class, wherever the warehouse keeps it.
    for module in ("warehouse.runtime.configuration", "warehouse.configuration"):
        try:
            return importlib.import_module(module).PipelineSettings
        except (ImportError, AttributeError):
            continue
    raise LookupError("no PipelineSettings in warehouse/")


SERVICE_APPS = {f"services.{name}.main:create_app": settings for name, settings in runner.SETTINGS.items()}
"""The uvicorn factory of each write service, and the settings class it reads."""


def mirador_commands() -> dict[tuple[str, ...], tuple[tuple[type[BaseSettings], ...], str]]:
    """Sub-commands a container may run: the settings classes each reads, and how it runs. `job` returns
    when its work is done; `foreground` runs until stopped; `background` starts servers and returns."""
    return {
        ("stack", "up"): ((StackSettings,), "job"),
        ("services", "up"): (tuple(runner.SETTINGS.values()), "background"),
        ("run",): ((pipeline_settings(),), "foreground"),
        ("serve",): ((ApiSettings,), "foreground"),
        ("simulate",): (tuple(runner.SETTINGS.values()), "foreground"),
    }


def all_settings() -> set[type[BaseSettings]]:
    """The settings class of each deployable (the pipeline's holds every stage's, the loader's too)."""
    return {ApiSettings, StackSettings, pipeline_settings(), *runner.SETTINGS.values()}


def setting_names(cls: type[BaseSettings]) -> dict[str, str]:
    """Every environment variable `cls` reads, upper-cased, and the field it sets: the field's alias (a
    shared `MIRADOR_*` key), and the prefixed field name when there is none or names populate too."""
    config = cls.model_config
    assert not config.get("case_sensitive"), f"{cls.__name__}: compare names as they are cased"
    prefix = config.get("env_prefix", "")
    names: dict[str, str] = {}
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias
        aliases = (
            [alias]
            if isinstance(alias, str)
            else [choice for choice in alias.choices if isinstance(choice, str)]
            if isinstance(alias, AliasChoices)
            else []
        )
        names.update({name.upper(): field_name for name in aliases})
        if not aliases or config.get("populate_by_name"):
            names[(prefix + field_name).upper()] = field_name
    return names


def dockerfile_env() -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(item.split("=", 1) for item in shlex.split(line[4:]))
    return env


def container_env(service: dict) -> dict[str, str]:
    """What a container of our image sees: the image's environment, then the service's."""
    return {**dockerfile_env(), **environment(service)}


def settings_in(cls: type[BaseSettings], env: dict[str, str], **overrides):
    """`cls` as it resolves in a container with exactly `env`: no .env file, nothing of this process."""
    with mock.patch.dict(os.environ, env, clear=True):
        return cls(_env_file=None, **overrides)


@dataclass(frozen=True)
class Run:
    """What a container's command resolves to."""

    program: str
    path: tuple[str, ...]
    """The sub-commands after the program: ("stack", "up"); () for uvicorn."""
    params: dict
    """The parameters click parsed for the command that runs."""
    reads: tuple[type[BaseSettings], ...]
    mode: str
    """`job`, `foreground` or `background` (see `mirador_commands`)."""


def resolve(command: click.Command, name: str, args: list[str]) -> tuple[tuple[str, ...], dict]:
    """Parse `args` as the console script would, invoking nothing: the sub-command path and the parsed
    parameters of the command that runs. click.UsageError for an unknown sub-command, option or value."""
    parent, path = None, []
    while isinstance(command, click.Group):
        ctx = click.Context(command, info_name=name, parent=parent)
        if not args:
            raise click.UsageError(f"`{' '.join([name, *path])}` needs a sub-command", ctx)
        name, command, args = command.resolve_command(ctx, args)
        parent, path = ctx, [*path, name]
    return tuple(path), command.make_context(name, list(args), parent=parent).params


def what_runs(service: dict) -> Run:
    argv = command(service)
    if not argv:
        raise click.UsageError("no command: the image's default only prints help")
    program, args = argv[0], argv[1:]
    if program == "mirador":
        path, params = resolve(main, "mirador", args)
        known = mirador_commands()
        if path not in known:
            raise click.UsageError(
                f"`mirador {' '.join(path)}` is not a command a container runs here "
                "(tests/test_compose.py: mirador_commands says what each reads)"
            )
        reads, mode = known[path]
        return Run(program, path, params, reads, mode)
    if program == "uvicorn":
        _, params = resolve(uvicorn_cli, "uvicorn", args)
        if params["app"] not in SERVICE_APPS:
            raise click.UsageError(f"{params['app']} is not the app of a write service ({', '.join(SERVICE_APPS)})")
        if not params["factory"]:
            raise click.UsageError(f"{params['app']} is a factory: pass --factory")
        return Run(program, (), params, (SERVICE_APPS[params["app"]],), "foreground")
    raise click.UsageError(f"{program!r} is neither `mirador` nor `uvicorn`")


def ours(compose: dict) -> dict[str, dict]:
    """The containers built from the repository's Dockerfile."""
    return {name: service for name, service in compose["services"].items() if "build" in service}


def listens(service: dict, run: Run) -> tuple[str, int, int] | None:
    """The address and port a server listens on in its container, and its port natively; None for a
    command that serves nothing."""
    if run.program == "uvicorn":
        cls = run.reads[0]
        return run.params["host"], run.params["port"], cls.model_fields["port"].default
    if run.path == ("serve",):
        overrides = {key: run.params[key] for key in ("host", "port") if run.params[key] is not None}
        settings = settings_in(ApiSettings, container_env(service), **overrides)
        return settings.host, settings.port, ApiSettings.model_fields["port"].default
    return None


def published_ports(name: str, service: dict) -> tuple[list[tuple[str, int, int]], list[str]]:
    """(host address, host port, container port) of each `ports` entry, and the problems of the rest."""
    ports, problems = [], []
    for entry in service.get("ports") or []:
        parts = str(entry).split(":")
        address, ports_of = (parts[0], parts[1:]) if len(parts) == 3 else ("", parts)
        if len(ports_of) != 2 or not all(part.isdigit() for part in ports_of):
            problems.append(f'{name}: publish {entry!r} as "127.0.0.1:<host port>:<container port>"')
            continue
        ports.append((address, int(ports_of[0]), int(ports_of[1])))
    return ports, problems


def mounts(service: dict) -> dict[str, tuple[str, bool]]:
    """Container path -> (named volume or host path, read-only) of each `volumes` entry."""
    found = {}
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            found[entry["target"]] = (entry.get("source", ""), bool(entry.get("read_only")))
        else:
            source, target, *mode = str(entry).split(":")
            found[target] = (source, "ro" in (mode[0].split(",") if mode else []))
    return found


def command_problems(compose: dict) -> list[str]:
    problems = []
    for name, service in ours(compose).items():
        try:
            run = what_runs(service)
        except click.ClickException as err:
            problems.append(f"{name}: `{shlex.join(command(service))}` is not a real command: {err.format_message()}")
            continue
        if run.program == "uvicorn":
            module, _, factory = run.params["app"].partition(":")
            if not callable(getattr(importlib.import_module(module), factory, None)):
                problems.append(f"{name}: {run.params['app']} is not callable")
        if run.mode == "background":
            problems.append(
                f"{name}: `{shlex.join(command(service))}` starts its servers in the background and "
                "returns: a container runs its server in the foreground (uvicorn --factory "
                "services.<name>.main:create_app, as services/runner.py starts it)"
            )
        if run.path == ("serve",) and (run.params["detach"] or run.params["stop"]):
            problems.append(f"{name}: `mirador serve --detach/--stop` returns at once: serve in the foreground")
        if run.mode == "job" and not is_one_shot(service):
            problems.append(f'{name}: `{shlex.join(command(service))}` exits when done: give it restart "no"')
    return problems


def environment_problems(compose: dict) -> list[str]:
    known = {name for cls in all_settings() for name in setting_names(cls)}
    problems = [
        f"Dockerfile: ENV {key} is not a setting any settings class reads"
        for key in dockerfile_env()
        if key.startswith("MIRADOR_") and key.upper() not in known
    ]
    for name, service in ours(compose).items():
        try:
            run = what_runs(service)
        except click.ClickException:
            continue  # command_problems says why
        reads = {key for cls in run.reads for key in setting_names(cls)}
        for key in environment(service):
            if key.upper() not in known:
                problems.append(f"{name}: {key} is not a setting any settings class reads")
            elif key.upper() not in reads:
                problems.append(
                    f"{name}: {key} is a setting, but not one `{shlex.join(command(service))}` reads "
                    f"({', '.join(cls.__name__ for cls in run.reads)})"
                )
        for cls in run.reads:
            try:
                settings_in(cls, container_env(service))
            except ValueError as err:  # pydantic's ValidationError, pydantic-settings' SettingsError
                problems.append(f"{name}: its environment is not valid {cls.__name__}: {err}")
    return problems


def port_problems(compose: dict) -> list[str]:
    stack = StackSettings.model_fields
    # The CDC stack's containers: the native port each is published on, the port it listens on inside.
    infrastructure = {
        "postgres": (stack["pg_port"].default, 5432),
        "kafka": (stack["kafka_port"].default, stack["kafka_port"].default),
    }
    # Worker n of the Connect group, natively on the first worker's port + n - 1.
    for number, name in enumerate(connect_workers(compose), start=1):
        infrastructure[name] = (stack["connect_port"].default + number - 1, 8083)
    problems = []
    for name, service in compose["services"].items():
        ports, unparsed = published_ports(name, service)
        problems += unparsed
        if name in infrastructure:
            expected = infrastructure[name]
        elif "build" in service:
            try:
                server = listens(service, what_runs(service))
            except click.ClickException:
                continue
            if server is None:
                if ports:
                    problems.append(f"{name}: publishes {ports} but serves nothing")
                continue
            address, port, native = server
            if address != "0.0.0.0":
                problems.append(
                    f"{name}: listens on {address} inside its container, where neither the host "
                    "nor the other containers reach it: bind 0.0.0.0"
                )
            expected = (native, port)
        else:
            continue
        problems += [
            f"{name}: published on {address or 'every interface'}, not loopback only"
            for address, _, _ in ports
            if address != "127.0.0.1"
        ]
        if [(host, inside) for _, host, inside in ports] != [expected]:
            problems.append(
                f"{name}: published as {[(host, inside) for _, host, inside in ports]}, natively "
                f"127.0.0.1:{expected[0]} (host port {expected[0]} -> its port {expected[1]})"
            )
    return problems


def publication_problems(compose: dict) -> list[str]:
    services = compose["services"]
    if "pipeline" not in services or "api" not in services:
        return ["no `pipeline` or no `api` service"]
    pipeline, api = services["pipeline"], services["api"]
    written = settings_in(pipeline_settings(), container_env(pipeline))
    read = settings_in(ApiSettings, container_env(api)).published
    problems = []
    if written.published != read:
        problems.append(f"the pipeline publishes to {written.published}, the api reads {read}")
    volumes = compose.get("volumes") or {}
    pipeline_mounts, api_mounts = mounts(pipeline), mounts(api)
    source, _ = pipeline_mounts.get(str(written.published), (None, False))
    if source not in volumes:
        problems.append(f"pipeline: {written.published} is not on a named volume")
    elif api_mounts.get(str(read)) != (source, True):
        problems.append(f"api: {read} is not the pipeline's volume {source!r}, mounted read-only")
    working, _ = next(
        ((src, ro) for target, (src, ro) in pipeline_mounts.items() if written.warehouse.is_relative_to(target)),
        (None, False),
    )
    if working not in volumes:
        problems.append(f"pipeline: its working file {written.warehouse} is not on a named volume")
    others = {src for target, (src, _) in api_mounts.items() if target != str(read)}
    if others & {src for src, _ in pipeline_mounts.values()}:
        problems.append(
            f"api: mounts {sorted(others)} of the pipeline's besides the publications: "
            "it reads only what the pipeline publishes"
        )
    return problems


def dependency_problems(compose: dict) -> list[str]:
    services, problems = compose["services"], []
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            if target not in services:
                problems.append(f"{name} depends on {target}, which is not a service")
                continue
            if condition == "service_healthy" and not (services[target].get("healthcheck") or {}).get("test"):
                problems.append(f"{name} waits for {target} to be healthy, but {target} has no healthcheck")
            if condition == "service_completed_successfully" and not is_one_shot(services[target]):
                problems.append(f"{name} waits for {target} to exit, but it is long-running")

    def cycle(name: str, seen: tuple[str, ...]) -> tuple[str, ...] | None:
        if name in seen:
            return (*seen, name)
        for target in depends_on(services.get(name, {})):
            if found := cycle(target, (*seen, name)):
                return found
        return None

    problems += sorted({" -> ".join(found) for name in services if (found := cycle(name, ()))})
    return problems


def group_problems(compose: dict) -> list[str]:
    """The Connect workers are one group: same group id and internal topics, each reachable by the others."""
    workers = {name: worker_properties(environment(w)) for name, w in connect_workers(compose).items()}
    problems = [] if len(workers) >= 2 else [f"{len(workers)} Connect worker(s): no other to take over a task"]
    group = ("group.id", "config.storage.topic", "offset.storage.topic", "status.storage.topic")
    first, *others = workers.items() if workers else [(None, {})]
    for name, props in others:
        problems += [
            f"{name}: {key} is {props[key]!r}, {first[0]}'s {first[1][key]!r}: not one group"
            for key in group
            if props[key] != first[1][key]
        ]
    for name, props in workers.items():
        if props["rest.advertised.host.name"] != name:
            problems.append(
                f"{name}: advertises {props['rest.advertised.host.name']!r}, not its service name, "
                "where the other workers reach it"
            )
    return problems


CHECKS = [
    command_problems,
    environment_problems,
    port_problems,
    publication_problems,
    dependency_problems,
    group_problems,
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__)
def test_the_file_passes(compose, check):
    problems = check(compose)
    assert not problems, "\n".join(problems)


def _set(service: str, key: str, value):
    def breaks(compose):
        compose["services"][service][key] = value

    return breaks


def _env(service: str, key: str, value: str):
    def breaks(compose):
        compose["services"][service].setdefault("environment", {})[key] = value

    return breaks


def _argv(service: str, edit):
    def breaks(compose):
        compose["services"][service]["command"] = edit(list(compose["services"][service]["command"]))

    return breaks


def _own_volume(compose):
    compose["services"]["api"]["volumes"] = ["api-published:/var/lib/mirador/published:ro"]
    compose["volumes"]["api-published"] = None


def _working_file_too(compose):
    compose["services"]["api"]["volumes"].append("warehouse-data:/var/lib/mirador/warehouse:ro")


@pytest.mark.parametrize(
    "breakage, breaks, check, says",
    [
        (
            "a sub-command that does not exist",
            _argv("pipeline", lambda argv: ["mirador", "runs"]),
            command_problems,
            "No such command 'runs'",
        ),
        (
            "an option that does not exist",
            _argv("api", lambda argv: argv + ["--hots", "0.0.0.0"]),
            command_problems,
            "No such option '--hots'",
        ),
        (
            "a uvicorn option that does not exist",
            _argv("orders", lambda argv: argv + ["--prot", "8102"]),
            command_problems,
            "No such option '--prot'",
        ),
        (
            "an app that is no service's",
            _argv("orders", lambda argv: [a.replace("orders", "order") for a in argv]),
            command_problems,
            "not the app of a write service",
        ),
        ("a server that detaches", _argv("api", lambda argv: argv + ["--detach"]), command_problems, "returns at once"),
        (
            "`mirador services up` in a container",
            _argv("orders", lambda argv: ["mirador", "services", "up", "orders"]),
            command_problems,
            "in the background",
        ),
        (
            "a variable no setting reads",
            _env("orders", "MIRADOR_ORDERS_PROT", "8102"),
            environment_problems,
            "MIRADOR_ORDERS_PROT is not a setting",
        ),
        (
            "a setting of another part",
            _env("api", "MIRADOR_KAFKA_BOOTSTRAP", "kafka:9092"),
            environment_problems,
            "not one `mirador serve --host 0.0.0.0` reads",
        ),
        (
            "a setting of another service",
            _env("orders", "MIRADOR_CUSTOMERS_TOKEN", "x"),
            environment_problems,
            "MIRADOR_CUSTOMERS_TOKEN is a setting, but not one",
        ),
        (
            "a value its settings refuse",
            _env("orders", "MIRADOR_CORS_ORIGINS", "http://127.0.0.1:8100"),
            environment_problems,
            "not valid OrdersSettings",
        ),
        (
            "a port other than the native one",
            _set("orders", "ports", ["127.0.0.1:18102:8102"]),
            port_problems,
            "natively 127.0.0.1:8102",
        ),
        ("a port on every interface", _set("api", "ports", ["8100:8100"]), port_problems, "not loopback only"),
        (
            "a server on its container's loopback",
            _argv("api", lambda argv: [("127.0.0.1" if a == "0.0.0.0" else a) for a in argv]),
            port_problems,
            "bind 0.0.0.0",
        ),
        ("a service not published", _set("invoices", "ports", []), port_problems, "natively 127.0.0.1:8103"),
        (
            "the api reading another directory",
            _env("api", "MIRADOR_PUBLISH_DIR", "/srv/published"),
            publication_problems,
            "the api reads /srv/published",
        ),
        ("the api on a volume of its own", _own_volume, publication_problems, "is not the pipeline's volume"),
        (
            "the api able to write the publications",
            _set("api", "volumes", ["published:/var/lib/mirador/published"]),
            publication_problems,
            "mounted read-only",
        ),
        ("the api mounting the working file", _working_file_too, publication_problems, "besides the publications"),
        (
            "a dependency that is not a service",
            _set("api", "depends_on", {"piepline": {"condition": "service_healthy"}}),
            dependency_problems,
            "piepline, which is not a service",
        ),
        (
            "a worker of another group",
            _env("connect-2", "GROUP_ID", "other-connect"),
            group_problems,
            "connect-2: group.id is 'other-connect'",
        ),
        (
            "a worker that advertises the other's name",
            _env("connect-2", "ADVERTISED_HOST_NAME", "connect"),
            group_problems,
            "connect-2: advertises 'connect'",
        ),
        (
            "a lone worker",
            lambda compose: compose["services"].pop("connect-2"),
            group_problems,
            "1 Connect worker(s)",
        ),
        (
            "the second worker on the first one's port",
            _set("connect-2", "ports", ["127.0.0.1:18083:8083"]),
            port_problems,
            "natively 127.0.0.1:18084",
        ),
        (
            "a dependency cycle",
            _set("pipeline", "depends_on", {"api": {"condition": "service_healthy"}}),
            dependency_problems,
            "api -> pipeline -> api",
        ),
    ],
)
def test_the_checks_catch_a_broken_file(compose, breakage, breaks, check, says):
    broken = copy.deepcopy(compose)
    breaks(broken)
    problems = check(broken)
    assert any(says in problem for problem in problems), f"{breakage}: {check.__name__} said {problems}"


def test_the_names_derived_are_the_ones_each_settings_class_reads():
    # Each derived name of a text or path field, set alone, is what the field then holds.
    checked = 0
    for cls in sorted(all_settings(), key=lambda cls: cls.__name__):
        for env_name, field_name in setting_names(cls).items():
            annotation = cls.model_fields[field_name].annotation
            optional = typing.get_origin(annotation) in (typing.Union, types.UnionType)
            kinds = (
                [kind for kind in typing.get_args(annotation) if kind is not type(None)] if optional else [annotation]
            )
            if kinds not in ([str], [Path], [SecretStr]):
                continue
            # A name a pattern allows (a Kafka group id is no path).
            patterns = [m.pattern for m in cls.model_fields[field_name].metadata if getattr(m, "pattern", None)]
            probe = "set-by-env" if any(not re.fullmatch(p, "/set-by-env") for p in patterns) else "/set-by-env"
            value = getattr(settings_in(cls, {env_name: probe}), field_name)
            value = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
            assert value == probe, f"{cls.__name__}: {env_name} does not set {field_name}"
            checked += 1
    assert checked > 20


def test_every_part_runs_in_its_own_container_of_our_image(services):
    assert set(runner.SETTINGS) | {"register", "pipeline", "api", "simulate"} <= set(ours({"services": services}))
    for name in ours({"services": services}):
        assert services[name]["image"] == "mirador:local" and services[name]["build"]["context"] == "."
    runs = {name: what_runs(services[name]) for name in ours({"services": services})}
    for name in runner.SETTINGS:
        assert runs[name].params["app"] == f"services.{name}.main:create_app"
    assert runs["pipeline"].path == ("run",)
    assert runs["api"].path == ("serve",)
    assert runs["simulate"].path == ("simulate",) and runs["simulate"].params["duration"] == 0


def test_only_the_traffic_is_behind_a_profile(services):
    # `docker compose up` starts the system; `docker compose --profile demo up` also drives traffic.
    assert services["simulate"]["profiles"] == ["demo"]
    assert [name for name, service in services.items() if service.get("profiles")] == ["simulate"]


def test_each_part_starts_after_what_it_needs(services):
    for name in runner.SETTINGS:
        assert depends_on(services[name]) == {"register": "service_completed_successfully"}
    assert depends_on(services["pipeline"]) == {"register": "service_completed_successfully"}
    # Healthy: it has published, so the API has something to serve.
    assert depends_on(services["api"]) == {"pipeline": "service_healthy"}
    assert depends_on(services["simulate"]) == {name: "service_healthy" for name in runner.SETTINGS}


async def _status(app, path: str) -> int:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe") as client:
        return (await client.get(path)).status_code


def probe(service: dict) -> tuple[int, str]:
    """The port and path a healthcheck asks on its own container's loopback."""
    found = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", " ".join(service["healthcheck"]["test"]))
    assert found, f"no URL on the container's loopback in {service['healthcheck']['test']}"
    return int(found[1]), found[2]


def test_each_server_is_healthy_when_its_probe_answers(services, tmp_path):
    from api.app import App

    for name, cls in runner.SETTINGS.items():
        port, path = probe(services[name])
        assert (port, path) == (what_runs(services[name]).params["port"], "/readyz"), name
        app = importlib.import_module(f"services.{name}.main").create_app(cls(_env_file=None))
        assert asyncio.run(_status(app, path)) != 404, f"{name} has no {path}"
    port, path = probe(services["api"])
    assert (port, path) == (listens(services["api"], what_runs(services["api"]))[1], "/readyz")
    app = App(settings_in(ApiSettings, {"MIRADOR_HOME": str(tmp_path)}))
    assert asyncio.run(_status(app, path)) != 404, f"the read API has no {path}"


def test_the_pipeline_is_healthy_once_it_has_published(services, tmp_path):
    from warehouse.publish import Publication, switch

    check = services["pipeline"]["healthcheck"]["test"]
    assert check[0] == "CMD" and check[1] == "python"
    env = {**container_env(services["pipeline"]), "MIRADOR_PUBLISH_DIR": str(tmp_path)}

    def healthy() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *check[2:]],
            env={**env, "PATH": os.environ["PATH"]},
            capture_output=True,
            text=True,
            timeout=30,
        )

    before = healthy()
    assert (before.returncode, before.stderr) == (1, "")
    switch(
        tmp_path,
        Publication(
            build_id="b1",
            file="b1.duckdb",
            built_at="2026-01-01T00:00:00+00:00",
            published_at="2026-01-01T00:00:00+00:00",
            through_batch=1,
            tables=[],
            watermark={},
        ),
    )
    assert healthy().returncode == 0


def test_each_service_reaches_its_database_and_answers_the_api_page(raw, services):
    register = raw["services"]["register"]["environment"]
    for name, cls in runner.SETTINGS.items():
        service = services[name]
        settings = settings_in(cls, container_env(service))
        expected = {"host": "postgres", "port": "5432", "dbname": name, "user": name}
        assert expected.items() <= psycopg.conninfo.conninfo_to_dict(settings.database_dsn).items(), name
        # The password `register` gave the service's role, with the same default.
        assert (
            raw["services"][name]["environment"]["MIRADOR_PG_SERVICE_PASSWORD"]
            == register["MIRADOR_PG_SERVICE_PASSWORD"]
        )
        assert PAGE_ORIGINS <= set(settings.cors_origins), f"{name}: the API's page may not send commands"
    # The page sends orders to the orders service where the host sees it.
    page = (ROOT / "api" / "page" / "index.html").read_text()
    default = re.search(r"orders_url\.value\s*=.*?\"(http://[^\"]+)\"", page)
    assert default, "the page names no default orders service URL"
    address, host_port, _ = published_ports("orders", services["orders"])[0][0]
    assert default[1] == f"http://{address}:{host_port}"


def test_the_traffic_reaches_each_service_with_its_token(raw, services):
    for name, cls in runner.SETTINGS.items():
        # `mirador simulate` sends to each service's base_url with its token, from the service's settings.
        client = settings_in(cls, container_env(services["simulate"]))
        server = settings_in(cls, container_env(services[name]))
        assert client.base_url == f"http://{name}:{what_runs(services[name]).params['port']}"
        assert client.token == server.token
        key = f"MIRADOR_{name.upper()}_TOKEN"
        assert raw["services"]["simulate"]["environment"][key] == raw["services"][name]["environment"][key]


def test_secrets_are_variables_with_the_development_default(raw):
    secret = re.compile(r"(PASSWORD|TOKEN|TOKENS)$")
    for name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if secret.search(key):
                assert re.fullmatch(r"\$\{MIRADOR_[A-Z_]+:-(mirador-dev|\[\])\}", str(value)), (
                    f"{name}: {key} is {value!r}, not ${{MIRADOR_<NAME>:-<development default>}}"
                )


def test_the_files_the_code_reads_beside_itself_reach_the_image():
    # A file that is not Python reaches a container in the package (package-data), or because the
    # image runs the code from the tree it copied, which .dockerignore does not keep out.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packaged = project["tool"]["setuptools"].get("package-data", {})
    dockerfile = (ROOT / "Dockerfile").read_text()
    workdir = re.search(r"^WORKDIR (\S+)$", dockerfile, re.M)[1]
    runs_from_tree = dockerfile_env().get("PYTHONPATH") == workdir and re.search(r"^COPY \. \.$", dockerfile, re.M)
    ignored = (ROOT / ".dockerignore").read_text().split()
    for package in ("mirador", "services", "traffic", "cdc", "warehouse", "api"):
        for path in (ROOT / package).rglob("*"):
            relative = path.relative_to(ROOT)
            if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in relative.parts:
                continue
            in_package = any(
                fnmatch.fnmatch(str(relative.relative_to(package)), glob) for glob in packaged.get(package, [])
            )
            kept_out = any(
                fnmatch.fnmatch(str(relative), pattern.removeprefix("**/"))
                or str(relative).startswith(pattern.rstrip("/") + "/")
                for pattern in ignored
            )
            assert in_package or (runs_from_tree and not kept_out), f"{relative} is not in the image"
