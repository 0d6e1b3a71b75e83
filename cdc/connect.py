"""Kafka Connect: distributed workers in one group with the Debezium PostgreSQL plugin, and its REST API."""

from __future__ import annotations

import json
import logging
import re
import string
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from cdc import jars, jvm, postgres
from cdc.config import SERVICES, StackSettings
from cdc.errors import StackError
from cdc.processes import port_in_use, require_free_port, running_pid, spawn, tail, wait_until
from cdc.processes import stop as stop_pid

log = logging.getLogger(__name__)

NAME = "connect"
CONNECTORS_DIR = Path(__file__).with_name("connectors")
PIDFILE = re.compile(rf"{NAME}(?:-(\d+))?\.pid")

WORKER_PROPERTIES = """\
# Written by mirador: a distributed worker of group {group}; internal topics on a single broker.
bootstrap.servers={bootstrap}
group.id={group}
listeners=http://127.0.0.1:{port}
rest.advertised.host.name=127.0.0.1
rest.advertised.port={port}
plugin.path={plugin_path}
# Every plugin here has a ServiceLoader manifest (hybrid_warn says so): no reflective scan at start-up.
plugin.discovery=service_load
key.converter=org.apache.kafka.connect.json.JsonConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
key.converter.schemas.enable=true
value.converter.schemas.enable=true
config.storage.topic={group}-configs
offset.storage.topic={group}-offsets
status.storage.topic={group}-status
config.storage.replication.factor=1
offset.storage.replication.factor=1
status.storage.replication.factor=1
# Debezium confirms the slot's LSN to Postgres when offsets are flushed: flush often.
offset.flush.interval.ms=2000
# A worker gone from the group has its connectors and tasks handed to the live ones at once, not
# after five minutes; a lone worker that restarts gets them back at once (ADR 26).
scheduled.rebalance.max.delay.ms=0
# A worker that stops heartbeating is out of the group after 6 s, the least a broker accepts by
# default (group.min.session.timeout.ms); a heartbeat every third of that (ADR 26).
session.timeout.ms=6000
heartbeat.interval.ms=2000
topic.creation.enable=true
# Debezium's producers: lz4 batches up to 256 KiB. Each JSON event repeats its schema, so a batch
# compresses several times over; the broker then handles about half the CPU a change (ADR 12).
producer.compression.type=lz4
producer.batch.size=262144
"""


@dataclass(frozen=True)
class Worker:
    """Native worker `number` (1-based) of the group; the first keeps the single worker's names."""

    number: int
    port: int

    @property
    def name(self) -> str:
        return NAME if self.number == 1 else f"{NAME}-{self.number}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def worker_id(self) -> str:
        """How Connect names this worker in connector and task status (its advertised host:port)."""
        return f"127.0.0.1:{self.port}"


def workers(settings: StackSettings) -> list[Worker]:
    """The native workers `MIRADOR_CONNECT_WORKERS` asks for, on consecutive ports from the first."""
    return [Worker(n, settings.connect_port + n - 1) for n in range(1, settings.connect_workers + 1)]


def _started(settings: StackSettings) -> list[Worker]:
    """Every worker this home has a PID file for, also those beyond the number asked for now."""
    pidfiles = (PIDFILE.fullmatch(f.name) for f in settings.run.glob(f"{NAME}*.pid"))
    numbers = {int(m[1] or 1) for m in pidfiles if m} | {w.number for w in workers(settings)}
    return [Worker(n, settings.connect_port + n - 1) for n in sorted(numbers)]


def _pidfile(settings: StackSettings, worker: Worker) -> Path:
    return settings.run / f"{worker.name}.pid"


def worker_pid(settings: StackSettings, worker: Worker) -> int | None:
    return running_pid(_pidfile(settings, worker), jvm.marker(settings))


def worker_pids(settings: StackSettings) -> dict[str, int]:
    """The live native workers' PIDs by worker id (`127.0.0.1:<port>`, as task status names them)."""
    return {w.worker_id: pid for w in _started(settings) if (pid := worker_pid(settings, w))}


def client(settings: StackSettings) -> httpx.Client:
    """A REST client on the brought URL, or on the first native worker that listens: any answers for all."""
    if settings.connect_url:
        url = settings.connect_rest_url
    else:
        asked = workers(settings)
        url = next((w.url for w in asked if port_in_use("127.0.0.1", w.port)), asked[0].url)
    return httpx.Client(base_url=url, timeout=10.0)


def healthy(settings: StackSettings, url: str | None = None) -> bool:
    """The REST API (of the worker at `url`, or any) answers and the Debezium plugin is loaded."""
    with httpx.Client(base_url=url, timeout=10.0) if url else client(settings) as http:
        plugins = http.get("/connector-plugins").raise_for_status().json()
    return any(p["class"].endswith("PostgresConnector") for p in plugins)


def start(settings: StackSettings) -> bool:
    """Start every worker asked for that is not running, all at once; False if all were running.

    Workers beyond the number asked for are stopped. If one fails to become healthy, the workers
    this call started are stopped again.
    """
    asked = workers(settings)
    _stop_workers(settings, [w for w in _started(settings) if w not in asked])
    missing = [w for w in asked if not worker_pid(settings, w)]
    if not missing:
        return False
    for worker in missing:
        require_free_port("127.0.0.1", worker.port, _what(settings, worker), "MIRADOR_CONNECT_PORT")
    spawned: list[Worker] = []
    try:
        pids = {}
        for worker in missing:
            pids[worker] = _spawn(settings, worker)
            spawned.append(worker)
        for worker, pid in pids.items():
            wait_until(
                lambda url=worker.url: healthy(settings, url),
                what=_what(settings, worker),
                timeout=settings.startup_timeout,
                log=settings.logs / f"{worker.name}.log",
                pid=pid,
            )
    except BaseException:
        _stop_workers(settings, spawned)
        raise
    return True


def _what(settings: StackSettings, worker: Worker) -> str:
    return f"Kafka Connect worker {worker.number}" if settings.connect_workers > 1 else "Kafka Connect"


def _spawn(settings: StackSettings, worker: Worker) -> int:
    config = settings.run / f"{worker.name}-distributed.properties"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        WORKER_PROPERTIES.format(
            bootstrap=settings.kafka_bootstrap_servers,
            group=settings.connect_group,
            port=worker.port,
            plugin_path=jars.plugin_path(settings),
        )
    )
    log.info("starting Kafka Connect worker %s on %s", worker.number, worker.worker_id)
    cmd = jvm.command(
        settings,
        worker.name,
        settings.connect_heap,
        jars.kafka_classpath(settings),
        "org.apache.kafka.connect.cli.ConnectDistributed",
        str(config),
    )
    return spawn(cmd, _pidfile(settings, worker), jvm.out_file(settings, worker.name))


def stop(settings: StackSettings) -> bool:
    """Stop every worker this home started, together, so the last ones are not handed everything first."""
    if stopped := _stop_workers(settings, _started(settings)):
        log.info("stopped Kafka Connect")
    return stopped


def _stop_workers(settings: StackSettings, chosen: list[Worker]) -> bool:
    if not chosen:
        return False
    with ThreadPoolExecutor(len(chosen)) as pool:
        results = list(pool.map(lambda w: stop_pid(_pidfile(settings, w), jvm.marker(settings), timeout=60), chosen))
    return any(results)


def assignments(settings: StackSettings) -> dict[str, dict[str, list[str]]]:
    """What each worker of the group runs, by worker id: {"connectors": [...], "tasks": ["<name>/<id>"]}."""
    with client(settings) as http:
        expanded = http.get("/connectors", params={"expand": "status"}).raise_for_status().json()
    held: dict[str, dict[str, list[str]]] = {}
    for name, entry in sorted(expanded.items()):
        state = entry["status"]
        worker = state["connector"].get("worker_id")
        if worker:
            held.setdefault(worker, {"connectors": [], "tasks": []})["connectors"].append(name)
        for task in state["tasks"]:
            if task.get("worker_id"):
                held.setdefault(task["worker_id"], {"connectors": [], "tasks": []})["tasks"].append(
                    f"{name}/{task['id']}"
                )
    return held


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
    """Create or update a connector idempotently with PUT /connectors/<name>/config.

    A group still forming (a worker just started or lost) answers 409 or not at all for a while; the
    PUT is idempotent, so it is sent again until the start-up timeout.
    """
    name = config["name"]
    deadline = time.monotonic() + settings.startup_timeout
    while True:
        try:
            with client(settings) as http:
                response = http.put(f"/connectors/{name}/config", json=config)
        except httpx.TransportError as err:
            if time.monotonic() > deadline:
                raise StackError(f"Kafka Connect did not answer the registration of {name}: {err}") from None
        else:
            if response.status_code != 409 or time.monotonic() > deadline:
                break
        time.sleep(1)
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
