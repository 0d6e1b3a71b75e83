"""Kafka Connect: a distributed worker with the Debezium PostgreSQL plugin, and its REST API."""

from __future__ import annotations

import json
import logging
import string
import time
from pathlib import Path

import httpx

from cdc import jars, jvm, postgres
from cdc.config import SERVICES, StackSettings
from cdc.errors import StackError
from cdc.processes import require_free_port, running_pid, spawn, tail, wait_until
from cdc.processes import stop as stop_pid

log = logging.getLogger(__name__)

NAME = "connect"
CONNECTORS_DIR = Path(__file__).with_name("connectors")

WORKER_PROPERTIES = """\
# Written by mirador: one distributed worker; internal topics on a single broker.
bootstrap.servers={bootstrap}
group.id=mirador-connect
listeners=http://127.0.0.1:{port}
rest.advertised.host.name=127.0.0.1
rest.advertised.port={port}
plugin.path={plugin_path}
plugin.discovery=hybrid_warn
key.converter=org.apache.kafka.connect.json.JsonConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
key.converter.schemas.enable=true
value.converter.schemas.enable=true
config.storage.topic=mirador-connect-configs
offset.storage.topic=mirador-connect-offsets
status.storage.topic=mirador-connect-status
config.storage.replication.factor=1
offset.storage.replication.factor=1
status.storage.replication.factor=1
# Debezium confirms the slot's LSN to Postgres when offsets are flushed: flush often.
offset.flush.interval.ms=2000
# A lone worker that restarts gets its connectors back at once, not after five minutes.
scheduled.rebalance.max.delay.ms=0
topic.creation.enable=true
# Debezium's producers: lz4 batches up to 256 KiB. Each JSON event repeats its schema, so a batch
# compresses several times over; the broker then handles about half the CPU a change (ADR 12).
producer.compression.type=lz4
producer.batch.size=262144
"""


def _pidfile(settings: StackSettings) -> Path:
    return settings.run / f"{NAME}.pid"


def pid(settings: StackSettings) -> int | None:
    return running_pid(_pidfile(settings), jvm.marker(settings))


def client(settings: StackSettings) -> httpx.Client:
    return httpx.Client(base_url=settings.connect_rest_url, timeout=10.0)


def healthy(settings: StackSettings) -> bool:
    """The REST API answers and the Debezium plugin is loaded."""
    with client(settings) as http:
        plugins = http.get("/connector-plugins").raise_for_status().json()
    return any(p["class"].endswith("PostgresConnector") for p in plugins)


def start(settings: StackSettings) -> bool:
    if pid(settings):
        return False
    require_free_port("127.0.0.1", settings.connect_port, "Kafka Connect", "MIRADOR_CONNECT_PORT")
    config = settings.run / "connect-distributed.properties"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        WORKER_PROPERTIES.format(
            bootstrap=settings.kafka_bootstrap_servers,
            port=settings.connect_port,
            plugin_path=jars.plugin_path(settings),
        )
    )
    log.info("starting Kafka Connect on 127.0.0.1:%s", settings.connect_port)
    cmd = jvm.command(
        settings,
        NAME,
        settings.connect_heap,
        jars.kafka_classpath(settings),
        "org.apache.kafka.connect.cli.ConnectDistributed",
        str(config),
    )
    started = spawn(cmd, _pidfile(settings), jvm.out_file(settings, NAME))
    wait_until(
        lambda: healthy(settings),
        what="Kafka Connect",
        timeout=settings.startup_timeout,
        log=settings.logs / f"{NAME}.log",
        pid=started,
    )
    return True


def stop(settings: StackSettings) -> bool:
    if stopped := stop_pid(_pidfile(settings), jvm.marker(settings), timeout=60):
        log.info("stopped Kafka Connect")
    return stopped


# -- Connectors ------------------------------------------------------------------------------------


def placeholders(settings: StackSettings) -> dict[str, str]:
    """Values substituted into `cdc/connectors/*.json`: where Connect finds Postgres, and as whom."""
    host, port = postgres.endpoint(settings)
    return {
        "MIRADOR_CONNECT_PG_HOST": settings.connect_pg_host or host,
        "MIRADOR_CONNECT_PG_PORT": str(settings.connect_pg_port or port),
        "MIRADOR_CDC_USER": settings.cdc_user,
        "MIRADOR_CDC_PASSWORD": settings.cdc_password.get_secret_value(),
    }


def load_config(path: Path, values: dict[str, str]) -> dict[str, str]:
    """A flat connector config with its `${...}` placeholders filled; unknown ones are an error."""
    try:
        return json.loads(string.Template(path.read_text()).substitute(values))
    except KeyError as missing:
        raise StackError(f"{path.name} uses ${{{missing.args[0]}}}, which mirador does not provide") from None


def connector_files(services: tuple[str, ...] = SERVICES) -> list[Path]:
    return [CONNECTORS_DIR / f"{service}.json" for service in services]


def register(settings: StackSettings, config: dict[str, str]) -> None:
    """Create or update a connector idempotently with PUT /connectors/<name>/config."""
    name = config["name"]
    with client(settings) as http:
        response = http.put(f"/connectors/{name}/config", json=config)
    if response.status_code >= 400:
        raise StackError(f"Kafka Connect refused connector {name}: {response.text}")


def delete(settings: StackSettings, name: str) -> None:
    with client(settings) as http:
        response = http.delete(f"/connectors/{name}")
    if response.status_code not in (204, 404):
        raise StackError(f"Kafka Connect could not delete connector {name}: {response.text}")


def reset(settings: StackSettings, name: str, config: dict[str, str]) -> None:
    """Delete a connector together with its stored source offsets (Connect keeps those otherwise).

    A connector re-created under the same name resumes from its old offsets; after its slot is
    dropped that fails. Offsets can only be deleted while the connector exists and is STOPPED, so a
    missing one is first created stopped.
    """
    with client(settings) as http:
        if http.get(f"/connectors/{name}").status_code == 404:
            http.post(
                "/connectors", json={"name": name, "config": config, "initial_state": "STOPPED"}
            ).raise_for_status()
        else:
            http.put(f"/connectors/{name}/stop").raise_for_status()
        deadline = time.monotonic() + 30
        while status(settings, name)["connector"]["state"] != "STOPPED":
            if time.monotonic() > deadline:
                raise StackError(f"connector {name} did not stop within 30s")
            time.sleep(0.25)
        response = http.delete(f"/connectors/{name}/offsets")
        if response.status_code >= 400:
            raise StackError(f"Kafka Connect could not delete the offsets of {name}: {response.text}")
    delete(settings, name)


def status(settings: StackSettings, name: str) -> dict:
    with client(settings) as http:
        response = http.get(f"/connectors/{name}/status")
    if response.status_code == 404:
        return {"name": name, "connector": {"state": "MISSING"}, "tasks": []}
    return response.raise_for_status().json()


def wait_running(settings: StackSettings, name: str, timeout: float) -> None:
    """Until the connector and each of its tasks are RUNNING; a FAILED one stops the wait with its trace."""
    deadline = time.monotonic() + timeout
    while True:
        state = status(settings, name)
        states = [state["connector"]["state"]] + [task["state"] for task in state["tasks"]]
        failed = [t for t in [state["connector"], *state["tasks"]] if t["state"] == "FAILED"]
        if failed:
            trace = (failed[0].get("trace") or "").splitlines()[:8]
            raise StackError(
                f"connector {name} FAILED",
                "fix the cause, then run `mirador stack up` again",
                "\n".join(f"    {line}" for line in trace),
            )
        if state["tasks"] and all(s == "RUNNING" for s in states):
            return
        if time.monotonic() > deadline:
            raise StackError(
                f"connector {name} was not RUNNING after {timeout:.0f}s (states: {states})",
                log=tail(settings.logs / f"{NAME}.log"),
            )
        time.sleep(0.5)


def register_all(settings: StackSettings, services: tuple[str, ...] = SERVICES) -> list[str]:
    values = placeholders(settings)
    configs = [load_config(path, values) for path in connector_files(services)]
    for config in configs:
        register(settings, config)
    for config in configs:
        wait_running(settings, config["name"], settings.startup_timeout)
    return [config["name"] for config in configs]
