"""Land a batch in DuckDB: rows, dead letters, markers and consumer positions in one transaction.

The file is opened for the batch and closed after it, under the warehouse lock, so the build step
and an analyst can take their turn between batches (docs/adr/0002-loader-exactly-once-into-duckdb.md).
Positions stored here (the ledger's) are the truth the consumer seeks to; a batch whose offsets are
already covered by them (from a zombie loader, or one that read from older offsets) lands only what is
new, so each offset lands exactly once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from warehouse import ledger
from warehouse.exceptions import TerminalError, TransientError
from warehouse.ingest.catalog import METADATA, RAW_SCHEMA, quote, supertype
from warehouse.ingest.configuration import LoaderSettings
from warehouse.ingest.frames import Frame, Work, greatest
from warehouse.lock import WarehouseLock

log = logging.getLogger(__name__)

CONFLICT_RETRIES = 5


@dataclass
class Landed:
    batch_id: int
    events: int
    dead_letters: int
    already_landed: int
    """Events at offsets landed before (a zombie loader's, or read again from older offsets): skipped."""
    seconds: float
    lock_wait: float


def connect(path: Path, settings: LoaderSettings, config: dict | None = None) -> duckdb.DuckDBPyConnection:
    """Open the working file (with the loader's DuckDB settings unless `config` says otherwise)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    config = config or {"threads": settings.loader_duckdb_threads, "memory_limit": settings.loader_duckdb_memory}
    try:
        return duckdb.connect(str(path), config=config)
    except duckdb.IOException as err:
        if "lock" in str(err).lower():
            raise TransientError(f"{path} is open for writing by a process outside the warehouse lock: {err}") from err
        raise TerminalError(f"cannot open {path}: {err}") from err


class Warehouse:
    """The working DuckDB file as the loader uses it: opened per batch under the lock, or, inside
    `mirador run`, a cursor of the pipeline's session (`warehouse.runtime.session`)."""

    def __init__(self, settings: LoaderSettings, session=None) -> None:
        self.settings, self.path = settings, settings.warehouse
        self.session = session
        self._ready = False

    @contextmanager
    def _open(self) -> Iterator[tuple[duckdb.DuckDBPyConnection, float]]:
        """The file for one batch and the seconds spent waiting for it."""
        if self.session is not None:
            started = time.perf_counter()
            with self.session.connection() as conn:
                yield conn, time.perf_counter() - started
            return
        with (
            WarehouseLock(self.path, "mirador load", timeout=self.settings.loader_lock_timeout) as lock,
            connect(self.path, self.settings) as conn,
        ):
            yield conn, lock.waited

    def read_state(self) -> tuple[dict[tuple[str, int], int], dict[str, dict[str, str]]]:
        """Stored positions and the raw tables' source columns, creating the state tables if new."""
        with self._open() as (conn, _):
            ledger.create(conn)
            self._ready = True
            conn.execute("set TimeZone = 'UTC'")
            return ledger.positions(conn), raw_columns(conn)

    def land(self, work: Work) -> Landed:
        """Land a batch in one transaction; retried when a concurrent writer of the same instance
        (dbt inside `mirador run`) conflicts with it, since a rolled-back batch left nothing behind."""
        for attempt in range(1, CONFLICT_RETRIES + 1):
            try:
                return self._land_once(work)
            except duckdb.TransactionException as err:
                if "conflict" not in str(err).lower() or attempt == CONFLICT_RETRIES:
                    raise
                log.warning("batch conflicted with a concurrent write, retrying (%s): %s", attempt, err)
                time.sleep(0.05 * attempt)
        raise AssertionError("the last attempt returns or raises")

    def _land_once(self, work: Work) -> Landed:
        started = time.perf_counter()
        with self._open() as (conn, waited):
            if not self._ready:  # the ledger exists once read_state or a first batch made it
                ledger.create(conn)
                self._ready = True
            conn.execute("set TimeZone = 'UTC'")
            conn.execute("begin transaction")
            try:
                landed = land_in_transaction(conn, work)
                conn.execute("commit")
            except BaseException:
                try:
                    conn.execute("rollback")
                except duckdb.Error:
                    pass  # the cause below matters; closing the connection discards the transaction
                raise
        landed.seconds, landed.lock_wait = time.perf_counter() - started, waited
        return landed


def raw_columns(conn: duckdb.DuckDBPyConnection) -> dict[str, dict[str, str]]:
    """Each raw table's source columns and their DuckDB types, as the decoder's catalog starts from."""
    metadata = {name for name, _, _ in METADATA}
    tables: dict[str, dict[str, str]] = {}
    for table, column, kind in conn.execute(
        "select table_name, column_name, data_type from duckdb_columns() "
        "where schema_name = ? and database_name = current_database() order by table_name, column_index",
        [RAW_SCHEMA],
    ).fetchall():
        if column not in metadata:
            tables.setdefault(table, {})[column] = kind
    return tables


def land_in_transaction(conn: duckdb.DuckDBPyConnection, work: Work) -> Landed:
    """Land `work` as a new batch in the caller's open transaction, skipping the offsets below the stored
    positions of its partitions (`work.first_offsets`): a replay of dead letters, whose offsets are behind
    them by nature, gives none and commits its own bookkeeping with it (warehouse/ingest/deadletters.py)."""
    batch_id = ledger.next_batch_id(conn)
    loaded_at = datetime.now(UTC)
    landed_before = _landed_before(conn, work)
    actual = raw_columns(conn)
    keys = ledger.raw_table_keys(conn)
    events = already_landed = dead = 0
    for number, frame in enumerate(work.frames):
        _evolve(conn, frame, work.desired[frame.table], actual, keys, batch_id)
        name = f"mirador_frame_{number}"
        conn.register(name, frame.data)  # a failure aborts the transaction; closing drops the view
        where, params = _unlanded(frame.topic, landed_before)
        count = conn.execute(_insert_sql(frame, name, where), [frame.topic, batch_id, loaded_at, *params]).fetchone()[0]
        conn.unregister(name)
        events += count
        already_landed += frame.data.num_rows - count
    unmapped = [(f.table, column, f.topic, kind) for f in work.frames for column, kind in f.unmapped.items()]
    if unmapped:
        ledger.record_unmapped(conn, unmapped, batch_id, loaded_at)
    if work.dead is not None:
        dead = ledger.add_dead_letters(conn, work.dead, batch_id, loaded_at, landed_before)
    if work.transactions is not None:
        ledger.add_transactions(conn, work.transactions, batch_id, landed_before)
    ledger.store_positions(conn, work.positions, batch_id, loaded_at)
    ledger.store_source_progress(conn, _source_progress(work, loaded_at), work.caught_up, loaded_at)
    ledger.store_topic_progress(conn, _topic_progress(work, batch_id), work.behind, work.topics)
    ledger.record_batch(
        conn,
        batch_id,
        loaded_at,
        messages=work.messages,
        events=events,
        tombstones=work.tombstones,
        dead_letters=dead,
        transactions=0 if work.transactions is None else work.transactions.num_rows,
        value_bytes=work.value_bytes,
        already_landed=already_landed,
        tables=sorted({f.table for f in work.frames}),
    )
    return Landed(batch_id, events, dead, already_landed, 0.0, 0.0)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _landed_before(conn: duckdb.DuckDBPyConnection, work: Work) -> dict[tuple[str, int], int]:
    """Positions already stored beyond this batch's first offsets: those offsets were landed before."""
    stored = {tp: o for tp, o in ledger.positions(conn).items() if tp in work.first_offsets}
    for tp, first in work.first_offsets.items():
        if tp in stored and stored[tp] < first:
            log.warning(
                "offset gap on %s[%s]: stored position %s, batch starts at %s (retention or compaction?)",
                tp[0],
                tp[1],
                stored[tp],
                first,
            )
    return {tp: o for tp, o in stored.items() if o > work.first_offsets[tp]}


def _unlanded(topic: str, stored: dict[tuple[str, int], int]) -> tuple[str, list]:
    clauses, params = [], []
    for (t, partition), offset in stored.items():
        if t == topic:
            clauses.append("(_partition = ? and _offset < ?)")
            params += [partition, offset]
    return (" where not (" + " or ".join(clauses) + ")" if clauses else ""), params


def _evolve(
    conn: duckdb.DuckDBPyConnection,
    frame: Frame,
    desired: dict[str, str],
    actual: dict[str, dict[str, str]],
    keys: dict[str, list[str] | None],
    batch_id: int,
) -> None:
    """Create the raw table, or add and widen its columns to what the decoder admitted (and record a
    changed primary key: `keys` is `loader.tables`' raw table -> key columns)."""
    table = f"{RAW_SCHEMA}.{quote(frame.table)}"
    have = actual.get(frame.table)
    if have is None:
        columns = [f"{quote(n)} {t}" for n, t, _ in METADATA] + [f"{quote(n)} {t}" for n, t in desired.items()]
        conn.execute(f"create table {table} ({', '.join(columns)})")
        ledger.record_raw_table(conn, frame.table, frame.topic, frame.service, frame.key_columns, batch_id)
        actual[frame.table] = dict(desired)
        keys.setdefault(frame.table, frame.key_columns)
        log.info("created raw.%s from %s", frame.table, frame.topic)
        return
    if frame.key_columns and keys.get(frame.table) != frame.key_columns:
        ledger.record_key_columns(conn, frame.table, frame.key_columns)
        keys[frame.table] = frame.key_columns
    for name, wanted in desired.items():
        if name not in have:
            if name in frame.defaults:  # rows already there hold the default, as Postgres backfilled them
                default = frame.defaults[name]
                literal = (
                    _literal(default)
                    if isinstance(default, str)
                    else repr(default).lower()
                    if isinstance(default, bool)
                    else repr(default)
                )
                conn.execute(f"alter table {table} add column {quote(name)} {wanted} default {literal}")
                conn.execute(f"alter table {table} alter column {quote(name)} drop default")
            else:
                conn.execute(f"alter table {table} add column {quote(name)} {wanted}")
            log.info("raw.%s: new column %s %s", frame.table, name, wanted)
        elif have[name] != wanted:
            target = supertype(have[name], wanted)
            if target is None:
                raise TerminalError(f"raw.{frame.table}.{name} is {have[name]}, which cannot widen to {wanted}")
            if target != have[name]:
                conn.execute(f"alter table {table} alter column {quote(name)} set data type {target}")
                log.info("raw.%s: column %s widened %s -> %s", frame.table, name, have[name], target)
            wanted = target
        have[name] = wanted


def _insert_sql(frame: Frame, source: str, where: str) -> str:
    names = [n for n, _, _ in METADATA] + [n for n, _ in frame.columns]
    toast = [(name, column.toast) for name, column in frame.columns if column.toast]
    unavailable = (
        "null::varchar[]"
        if not toast
        else (
            "nullif(list_filter(["
            + ", ".join(f"case when {quote(n)} = {lit} then {_literal(n)} end" for n, lit in toast)
            + "], lambda x: x is not null), []::varchar[])"
        )
    )
    values = [
        "_op",
        "_op = 'd'",
        "coalesce(_snapshot <> 'false', false)",
        "_lsn",
        "_seq",
        "_txid",
        "_commit_ts",
        unavailable,
        "cast(_old_key as json)",
        "?",
        "_partition",
        "_offset",
        "?",
        "?",
    ]
    keys = set(frame.key_columns or [name for name, _ in frame.columns])
    for name, column in frame.columns:
        expr = column.sql.format(c=quote(name))
        if column.toast:
            expr = f"case when {quote(name)} = {column.toast} then null else {expr} end"
        if name not in keys:  # a delete's non-key fields are Debezium's defaults for NOT NULL, not data
            expr = f"case when _op = 'd' then null else {expr} end"
        values.append(expr)
    return (
        f"insert into {RAW_SCHEMA}.{quote(frame.table)} ({', '.join(quote(n) for n in names)}) "
        f"select {', '.join(values)} from {source}{where}"
    )


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _topic_progress(work: Work, batch_id: int) -> list[list]:
    """Per topic: the newest LSN landed and whether it still has unread messages.

    Debezium writes a service's changes in commit order, so once a topic is read to its end every
    change committed before the newest one landed anywhere is in; a topic still behind holds back
    the service's visible watermark (`ledger.read_watermark`) to what it has landed.
    """
    topics: dict[str, list] = {}
    for frame in work.frames:  # a topic has a frame per schema version in the batch
        row = topics.setdefault(
            frame.topic, [frame.topic, frame.service, None, None, frame.topic in work.behind, batch_id]
        )
        row[2] = greatest(row[2], frame.max_lsn)
        row[3] = greatest(row[3], frame.max_commit_us)
    return [
        [topic, service, lsn, _utc(commit), behind, batch]
        for topic, service, lsn, commit, behind, batch in topics.values()
    ]


def _utc(micros: int | None) -> datetime | None:
    return None if micros is None else EPOCH + timedelta(microseconds=micros)


def _source_progress(work: Work, loaded_at: datetime) -> list[list]:
    """Per service: the newest source position landed (its LSN, commit time and heartbeat)."""
    progress: dict[str, list] = {}

    def seen(service: str, lsn: int | None, commit_us: int | None) -> None:
        entry = progress.setdefault(service, [None, None, None])
        entry[0] = greatest(entry[0], lsn)
        entry[1] = greatest(entry[1], commit_us)

    for frame in work.frames:
        seen(frame.service, frame.max_lsn, frame.max_commit_us)
    if work.transactions is not None:
        # Per service in Arrow: a batch holds thousands of markers, and a Python loop over them took
        # about 12 us each (23 ms for 2,000) with the GIL held; the aggregate takes 0.6 ms in all.
        markers = work.transactions
        newest = (
            pa.table(
                {
                    "service": markers["service"],
                    "lsn": markers["lsn"],
                    "commit_us": markers["commit_ts"].cast(pa.int64()),
                }
            )
            .group_by("service")
            .aggregate([("lsn", "max"), ("commit_us", "max")])
        )
        for service, lsn, commit_us in zip(
            *(newest[c].to_pylist() for c in ("service", "lsn_max", "commit_us_max")), strict=True
        ):
            seen(service, lsn, commit_us)
    for service, ts_ms in work.heartbeats.items():
        progress.setdefault(service, [None, None, None])[2] = ts_ms * 1000
    rows = []
    for service in sorted(set(progress) | work.caught_up):
        lsn, commit_us, heartbeat_us = progress.get(service, [None, None, None])
        rows.append([service, lsn, _utc(commit_us), loaded_at if lsn is not None else None, _utc(heartbeat_us)])
    return rows
