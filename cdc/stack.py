"""The whole CDC stack: bring it up in order, take down exactly what we started, report on it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from cdc import connect, jars, jvm, kafka, postgres
from cdc.config import SERVICES, StackSettings
from cdc.errors import StackError

log = logging.getLogger(__name__)


@dataclass
class Startup:
    """What `up` did: components it started (with seconds taken) and those it found running."""

    started: dict[str, float] = field(default_factory=dict)
    already_running: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    connectors: list[str] = field(default_factory=list)
    total_seconds: float = 0.0


def _timed(startup: Startup, name: str, start) -> None:
    t0 = time.monotonic()
    if start():
        startup.started[name] = time.monotonic() - t0
    else:
        startup.already_running.append(name)


def up(settings: StackSettings, *, connectors: bool = True) -> Startup:
    """Start what is not running, bootstrap the databases, register the connectors; idempotent.

    On failure, the components this call started are stopped again: nothing is left half-started.
    """
    startup = Startup()
    t0 = time.monotonic()
    try:
        if not (settings.kafka_bootstrap and settings.connect_url):
            jvm.require_java(settings)
            jars.resolve(settings)
        if settings.pg_dsn:
            startup.external.append("postgres")
            if not postgres.accepts_connections(settings):
                raise StackError(
                    "the Postgres named by MIRADOR_PG_DSN does not accept connections",
                    "check the DSN, or unset MIRADOR_PG_DSN to run a native cluster",
                )
        else:
            _timed(startup, "postgres", lambda: postgres.start(settings))
        postgres.bootstrap(settings)
        if settings.kafka_bootstrap:
            startup.external.append("kafka")
        else:
            _timed(startup, "kafka", lambda: kafka.start(settings))
        if settings.connect_url:
            startup.external.append("connect")
        else:
            _timed(startup, "connect", lambda: connect.start(settings))
        if connectors:
            t1 = time.monotonic()
            startup.connectors = connect.register_all(settings)
            startup.started["connectors"] = time.monotonic() - t1
    except BaseException:
        stop_components(settings, list(startup.started))
        raise
    startup.total_seconds = time.monotonic() - t0
    return startup


def down(settings: StackSettings) -> list[str]:
    """Stop the components this home started, newest first, by PID. Brought servers are left alone."""
    return stop_components(settings, ["connect", "kafka", "postgres"])


def stop_components(settings: StackSettings, names: list[str]) -> list[str]:
    stoppers = {"connect": connect.stop, "kafka": kafka.stop, "postgres": postgres.stop}
    stopped = []
    for name in ("connect", "kafka", "postgres"):
        if name in names and _owned(settings, name):
            try:
                if stoppers[name](settings):
                    stopped.append(name)
            except StackError as err:
                log.error("could not stop %s: %s", name, err)
    return stopped


def _owned(settings: StackSettings, name: str) -> bool:
    return not {"postgres": settings.pg_dsn, "kafka": settings.kafka_bootstrap, "connect": settings.connect_url}[name]


def status(settings: StackSettings) -> dict:
    """Each component's state (each native Connect worker its own), each connector's and task's state and
    worker, what each worker of the group holds, each slot's retained WAL."""
    components = {}
    pg_up = postgres.accepts_connections(settings)
    components["postgres"] = {
        "state": "up" if pg_up else "down",
        "mode": "external" if settings.pg_dsn else "native",
        "pid": None if settings.pg_dsn else postgres.pid(settings) if pg_up else None,
        "address": "{}:{}".format(*postgres.endpoint(settings)),
    }
    kafka_up = kafka.healthy(settings.kafka_bootstrap_servers, timeout=1.5)
    components["kafka"] = {
        "state": "up" if kafka_up else "down",
        "mode": "external" if settings.kafka_bootstrap else "native",
        "pid": None if settings.kafka_bootstrap else kafka.pid(settings),
        "address": settings.kafka_bootstrap_servers,
    }
    components.update(_connect_components(settings))
    connect_up = any(components[name]["state"] == "up" for name in components if name.startswith(connect.NAME))
    connectors, workers = [], []
    if connect_up:
        for service in SERVICES:
            state = connect.status(settings, f"mirador-{service}")
            connectors.append(
                {
                    "name": state["name"],
                    "state": state["connector"]["state"],
                    "worker_id": state["connector"].get("worker_id"),
                    "tasks": [task["state"] for task in state["tasks"]],
                    "task_workers": [task.get("worker_id") for task in state["tasks"]],
                }
            )
        ours = {w.worker_id: w.name for w in connect.workers(settings)} if not settings.connect_url else {}
        held = connect.assignments(settings)
        workers = [
            {"worker_id": worker_id, "component": ours.get(worker_id), "connectors": [], "tasks": []}
            | held.get(worker_id, {})
            for worker_id in sorted(set(held) | set(ours))
        ]
    slots = postgres.slots(settings) if pg_up else []
    return {"components": components, "connectors": connectors, "workers": workers, "slots": slots}


def _connect_components(settings: StackSettings) -> dict[str, dict]:
    """The brought Connect REST URL as one component, or each native worker as its own."""

    def up(url: str) -> bool:
        try:
            return connect.healthy(settings, url)
        except Exception:  # noqa: BLE001 - down or not answering
            return False

    if settings.connect_url:
        url = settings.connect_rest_url
        return {connect.NAME: {"state": "up" if up(url) else "down", "mode": "external", "pid": None, "address": url}}
    return {
        worker.name: {
            "state": "up" if up(worker.url) else "down",
            "mode": "native",
            "pid": connect.worker_pid(settings, worker),
            "address": worker.url,
        }
        for worker in connect.workers(settings)
    }
