"""`mirador resnapshot <service>.<table>`: read one table again while streaming goes on.

A row in the service database's signal table (`mirador.debezium_signal`) asks its connector for a
Debezium incremental snapshot: the table is read in primary-key chunks, each between two watermark
rows the connector writes to the same table, and a chunk's reads of keys that changed between its
watermarks are dropped, so the reads land after every change they could hide. Staging orders them by
the commit position Debezium gives them (dbt_project/macros/current_state.sql).

Progress comes from the connector's committed source offsets (`GET /connectors/<name>/offsets`),
which hold `incremental_snapshot_*` keys while a snapshot runs; they are flushed every two seconds.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

import httpx
import psycopg
from psycopg.rows import tuple_row

from cdc import connect, postgres
from cdc.config import SERVICES, StackSettings
from cdc.errors import StackError, UnknownTarget, Unreachable

SIGNAL = (
    "insert into mirador.debezium_signal (id, type, data) values (%s, 'execute-snapshot', %s) "
    "returning pg_current_wal_insert_lsn() - '0/0'::pg_lsn"
)
PUBLISHED_TABLES = (
    "select tablename from pg_publication_tables where pubname = %s and schemaname = 'public' order by tablename"
)
COMMITTED_LSN = "select pg_current_wal_insert_lsn() - '0/0'::pg_lsn"


@dataclass
class Request:
    """A resnapshot asked for: its signal's id, and a WAL position at or after the signal's commit."""

    service: str
    table: str
    signal_id: str
    after_lsn: int


@dataclass
class SnapshotProgress:
    """A connector's incremental snapshot as its committed offsets tell it."""

    service: str
    connector: str
    running: bool
    signal_id: str | None = None
    """The signal that started the running snapshot (`incremental_snapshot_correlation_id`)."""
    tables: list[str] = field(default_factory=list)
    """Tables still to read, the one being read first (`schema.table`)."""
    committed_lsn: int | None = None
    """The last commit the connector's offsets have reached."""


def parse_target(target: str) -> tuple[str, str]:
    service, dot, table = target.partition(".")
    if not dot or not table or "." in table:
        raise UnknownTarget(
            f"{target!r} is not <service>.<table>", f"for example customers.customers; services: {', '.join(SERVICES)}"
        )
    if service not in SERVICES:
        raise UnknownTarget(f"unknown service {service!r}", f"services: {', '.join(SERVICES)}")
    return service, table


def tables(settings: StackSettings, service: str) -> list[str]:
    """The service's tables its connector captures (public tables in the publication)."""
    try:
        with psycopg.connect(postgres.service_dsn(settings, service), connect_timeout=5, row_factory=tuple_row) as conn:
            return [name for (name,) in conn.execute(PUBLISHED_TABLES, (postgres.PUBLICATION,))]
    except psycopg.OperationalError as err:
        raise Unreachable(f"cannot reach the {service} database: {_first_line(err)}", "is the stack up?") from None


def request(settings: StackSettings, target: str) -> Request:
    """Ask the service's connector to read `<service>.<table>` again; returns once the signal is committed."""
    service, table = parse_target(target)
    captured = tables(settings, service)
    if table not in captured:
        raise UnknownTarget(
            f"the {service} service has no captured table {table!r}", f"its tables: {', '.join(captured) or 'none'}"
        )
    _require_signals(settings, service)
    signal_id = f"resnapshot-{uuid.uuid4().hex[:24]}"  # the id column holds 42
    data = json.dumps({"data-collections": [f"public.{table}"], "type": "incremental"})
    with psycopg.connect(postgres.service_dsn(settings, service), connect_timeout=5) as conn:
        conn.execute(SIGNAL, (signal_id, data))
        conn.commit()
        after = conn.execute(COMMITTED_LSN).fetchone()[0]
    return Request(service, table, signal_id, int(after))


def progress(settings: StackSettings, service: str) -> SnapshotProgress:
    """The service's connector's incremental snapshot, from its committed offsets (for `mirador status`)."""
    name = _connector(service)
    offset = _offset(settings, name)
    collections = offset.get("incremental_snapshot_collections")
    names = [c["incremental_snapshot_collections_id"] for c in json.loads(collections)] if collections else []
    return SnapshotProgress(
        service=service,
        connector=name,
        running=bool(names),
        signal_id=offset.get("incremental_snapshot_correlation_id") if names else None,
        tables=names,
        committed_lsn=offset.get("lsn_commit"),
    )


def finished(settings: StackSettings, req: Request) -> bool:
    """The connector committed a position after the signal, and its table is no longer being read."""
    state = progress(settings, req.service)
    return (state.committed_lsn or 0) > req.after_lsn and f"public.{req.table}" not in state.tables


def wait(settings: StackSettings, req: Request, timeout: float, on_progress=None) -> float:
    """Until the request is finished; seconds waited. A connector that is not RUNNING stops the wait."""
    started = time.monotonic()
    while not finished(settings, req):
        name = _connector(req.service)
        state = _get(settings, f"/connectors/{name}/status").json()
        if "FAILED" in [state.get("connector", {}).get("state"), *(t["state"] for t in state.get("tasks", []))]:
            raise StackError(f"connector {name} FAILED during the resnapshot", "see `mirador stack status`")
        if time.monotonic() - started > timeout:
            raise Unreachable(
                f"the resnapshot of {req.service}.{req.table} had not finished after {timeout:.0f}s",
                "it goes on in the connector; `mirador resnapshot --status` shows where it is",
            )
        if on_progress:
            on_progress(progress(settings, req.service))
        time.sleep(1.0)
    return time.monotonic() - started


def _connector(service: str) -> str:
    return f"mirador-{service}"


def _get(settings: StackSettings, path: str) -> httpx.Response:
    try:
        with connect.client(settings) as http:
            return http.get(path)
    except httpx.HTTPError as err:
        raise Unreachable(
            f"Kafka Connect at {settings.connect_rest_url} does not answer: {_first_line(err)}",
            "start it with `mirador stack up`",
        ) from None


def _require_signals(settings: StackSettings, service: str) -> None:
    name = _connector(service)
    response = _get(settings, f"/connectors/{name}/config")
    if response.status_code == 404:
        raise StackError(f"connector {name} is not registered", "run `mirador stack up`")
    config = response.raise_for_status().json()
    if config.get("signal.data.collection") != postgres.SIGNAL_TABLE or "source" not in config.get(
        "signal.enabled.channels", "source"
    ):
        raise StackError(
            f"connector {name} does not read signals from {postgres.SIGNAL_TABLE}",
            "run `mirador stack up` to apply cdc/connectors/*.json to the registered connectors",
        )


def _offset(settings: StackSettings, name: str) -> dict:
    response = _get(settings, f"/connectors/{name}/offsets")
    if response.status_code == 404:
        raise StackError(f"connector {name} is not registered", "run `mirador stack up`")
    offsets = response.raise_for_status().json()["offsets"]
    return offsets[0]["offset"] if offsets else {}


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
