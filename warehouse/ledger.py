"""The ledger: the `loader` schema of the working file, where the stages keep their bookkeeping.

Everything here is written in the transaction of the rows it describes, so the ledger and the data
never disagree:
- `loader.positions`: per Kafka partition, the next offset to read; the consumer seeks to it.
- `loader.batches`: one row per landed batch, with the raw tables it changed; builds select from it.
- `loader.dead_letters`: messages that could not be loaded, with their reason.
- `loader.replayed_letters`: dead letters that `mirador deadletters replay` landed after a fix, and in
  which batch.
- `loader.transactions`: Debezium's transaction markers, per service.
- `loader.source_progress`, `loader.topic_progress`: per service and per topic, the newest source
  position landed; `read_watermark` turns them into what a publication includes.
- `loader.tables`: each raw table's topic, service and primary-key columns.
- `loader.builds`: one row per build, with the last batch it read; the next build starts after it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    import pyarrow as pa

TP = tuple[str, int]

DDL = """
create schema if not exists raw;
create schema if not exists loader;
create table if not exists loader.positions (
    topic varchar, partition integer, next_offset bigint not null, batch_id bigint, updated_at timestamptz,
    primary key (topic, partition));
create table if not exists loader.batches (
    batch_id bigint primary key, committed_at timestamptz, messages bigint, events bigint, tombstones bigint,
    dead_letters bigint, transactions bigint, value_bytes bigint, already_landed bigint, tables varchar[]);
create table if not exists loader.dead_letters (
    topic varchar, partition integer, "offset" bigint, key blob, value blob, reason varchar, stage varchar,
    batch_id bigint, loaded_at timestamptz);
create table if not exists loader.replayed_letters (
    topic varchar, partition integer, "offset" bigint, reason varchar, stage varchar, dead_batch_id bigint,
    dead_at timestamptz, batch_id bigint, replayed_at timestamptz);
create table if not exists loader.transactions (
    service varchar, status varchar, id varchar, txid bigint, lsn bigint, event_count bigint,
    data_collections json, commit_ts timestamptz, topic varchar, partition integer, "offset" bigint,
    batch_id bigint);
create table if not exists loader.source_progress (
    service varchar primary key, last_lsn bigint, last_commit_ts timestamptz, last_loaded_at timestamptz,
    heartbeat_at timestamptz, caught_up_lsn bigint, caught_up_commit_ts timestamptz, caught_up_at timestamptz);
create table if not exists loader.topic_progress (
    topic varchar primary key, service varchar, last_lsn bigint, last_commit_ts timestamptz, behind boolean,
    batch_id bigint);
create table if not exists loader.tables (
    raw_table varchar primary key, topic varchar, service varchar, key_columns varchar[], created_batch bigint);
create table if not exists loader.unmapped_columns (
    raw_table varchar, column_name varchar, topic varchar, connect_type varchar, first_batch_id bigint,
    first_seen_at timestamptz, primary key (raw_table, column_name));
create table if not exists loader.builds (
    build_id varchar primary key, started_at timestamptz, finished_at timestamptz,
    through_batch bigint, selected varchar, success boolean, seconds double);
alter table loader.builds add column if not exists tested boolean default true;
"""
"""The `raw` schema the loader lands in and the ledger's tables, created if missing."""


def create(conn: duckdb.DuckDBPyConnection) -> None:
    """Create the ledger (and `raw`), and bring a ledger an older loader wrote up to date."""
    conn.execute(DDL)
    renamed = conn.execute(
        "select count(*) from duckdb_columns() where database_name = current_database() and schema_name = 'loader' "
        "and table_name = 'batches' and column_name = 'skipped_replayed'"
    ).fetchone()[0]
    if renamed:  # the events of offsets landed before, under its earlier name
        conn.execute("alter table loader.batches rename column skipped_replayed to already_landed")


# -- Columns the loader cannot map (they land as their JSON text) --------------------------------------


def record_unmapped(conn: duckdb.DuckDBPyConnection, rows: list[tuple[str, str, str, str]], batch_id: int, at) -> None:
    """(raw table, column, topic, Connect type) of columns landing as JSON text; the first sighting stays."""
    conn.executemany(
        "insert into loader.unmapped_columns values (?, ?, ?, ?, ?, ?) on conflict do nothing",
        [[*row, batch_id, at] for row in rows],
    )


def unmapped_columns(conn: duckdb.DuckDBPyConnection, after_batch: int = -1) -> list[tuple[str, str, str, int]]:
    """(raw table, column, Connect type, first batch) of unmapped columns first seen after `after_batch`."""
    return conn.execute(
        "select raw_table, column_name, connect_type, first_batch_id from loader.unmapped_columns "
        "where first_batch_id > ? order by raw_table, column_name",
        [after_batch],
    ).fetchall()


# -- Positions and batches (the loader) ---------------------------------------------------------------


def positions(conn: duckdb.DuckDBPyConnection) -> dict[TP, int]:
    """Per partition, the next offset to read."""
    return {
        (t, p): o for t, p, o in conn.execute("select topic, partition, next_offset from loader.positions").fetchall()
    }


def next_batch_id(conn: duckdb.DuckDBPyConnection) -> int:
    return conn.execute("select coalesce(max(batch_id), 0) + 1 from loader.batches").fetchone()[0]


def store_positions(
    conn: duckdb.DuckDBPyConnection, positions: dict[TP, int], batch_id: int, loaded_at: datetime
) -> None:
    """The next offsets after a batch; a position never moves back."""
    _upsert(
        conn,
        "insert into loader.positions",
        [[t, p, o, batch_id, loaded_at] for (t, p), o in positions.items()],
        "on conflict (topic, partition) do update set "
        "next_offset = greatest(loader.positions.next_offset, excluded.next_offset), "
        "batch_id = excluded.batch_id, updated_at = excluded.updated_at",
    )


def record_batch(
    conn: duckdb.DuckDBPyConnection,
    batch_id: int,
    loaded_at: datetime,
    *,
    messages: int,
    events: int,
    tombstones: int,
    dead_letters: int,
    transactions: int,
    value_bytes: int,
    already_landed: int,
    tables: list[str],
) -> None:
    conn.execute(
        "insert into loader.batches (batch_id, committed_at, messages, events, tombstones, dead_letters, "
        "transactions, value_bytes, already_landed, tables) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            batch_id,
            loaded_at,
            messages,
            events,
            tombstones,
            dead_letters,
            transactions,
            value_bytes,
            already_landed,
            tables,
        ],
    )


def add_dead_letters(
    conn: duckdb.DuckDBPyConnection, dead: pa.Table, batch_id: int, loaded_at: datetime, landed_before: dict[TP, int]
) -> int:
    """The batch's dead letters, but for those at offsets landed before; how many were added."""
    return _add_side_rows(conn, "loader.dead_letters", dead, [batch_id, loaded_at], landed_before)


# -- Dead letters after a fix (`mirador deadletters`) ---------------------------------------------------

DeadLetterKey = tuple[str, int, int]
"""(topic, partition, offset)"""


def dead_letter_groups(conn: duckdb.DuckDBPyConnection) -> list[dict]:
    """Per topic, partition and reason: how many dead letters, their first and last offset and load time."""
    rows = conn.execute(
        'select topic, partition, reason, stage, count(*), min("offset"), max("offset"), min(loaded_at), '
        'max(loaded_at) from loader.dead_letters group by all order by topic, partition, min("offset")'
    ).fetchall()
    names = ("topic", "partition", "reason", "stage", "count", "first_offset", "last_offset")
    return [
        dict(zip(names, row[:7], strict=True)) | {"first_loaded_at": _iso(row[7]), "last_loaded_at": _iso(row[8])}
        for row in rows
    ]


def count_replayed(conn: duckdb.DuckDBPyConnection) -> int:
    """How many dead letters were landed by a replay (0 in a ledger from before replays)."""
    try:
        return conn.execute("select count(*) from loader.replayed_letters").fetchone()[0]
    except duckdb.CatalogException:
        return 0


def dead_letters_after(
    conn: duckdb.DuckDBPyConnection,
    after: DeadLetterKey | None,
    topic: str | None,
    reason: str | None,
    limit: int,
    max_bytes: int,
) -> list[tuple[str, int, int, bytes | None, bytes | None]]:
    """The next dead letters after `after` in source order (topic, partition, offset), of `topic` and
    with `reason` in their reason if given: (topic, partition, offset, key, value). At most `limit`,
    and no more than one past `max_bytes` of values: the sizes are read first, then the bytes."""
    t, p, o = after or ("", -1, -1)
    where = (
        'where (topic > ? or (topic = ? and (partition > ? or (partition = ? and "offset" > ?)))) '
        "and (? is null or topic = ?) and contains(reason, ?) "
    )
    params = [t, t, p, p, o, topic, topic, reason or ""]
    sizes = conn.execute(
        f'select coalesce(octet_length(value), 0) from loader.dead_letters {where} order by topic, partition, "offset" '
        "limit ?",
        [*params, limit],
    ).fetchall()
    count = total = 0
    for (size,) in sizes:
        count, total = count + 1, total + size
        if total >= max_bytes:
            break
    return conn.execute(
        f'select topic, partition, "offset", key, value from loader.dead_letters {where} '
        'order by topic, partition, "offset" limit ?',
        [*params, count],
    ).fetchall()


def revive_dead_letters(
    conn: duckdb.DuckDBPyConnection, landed: list[DeadLetterKey], batch_id: int, replayed_at: datetime
) -> None:
    """Dead letters landed in `batch_id` leave `loader.dead_letters` for `loader.replayed_letters`."""
    conn.register("mirador_revived", _keys_table(landed))
    try:
        conn.execute(
            'insert into loader.replayed_letters select dead.topic, dead.partition, dead."offset", dead.reason, '
            "dead.stage, dead.batch_id, dead.loaded_at, ?, ? from loader.dead_letters as dead "
            'semi join mirador_revived as revived using (topic, partition, "offset")',
            [batch_id, replayed_at],
        )
        conn.execute(
            "delete from loader.dead_letters as dead using mirador_revived as revived where "
            'dead.topic = revived.topic and dead.partition = revived.partition and dead."offset" = revived."offset"'
        )
    finally:
        conn.unregister("mirador_revived")


def record_new_reasons(conn: duckdb.DuckDBPyConnection, failed: list[tuple[str, int, int, str, str]]) -> None:
    """Dead letters that failed again, [(topic, partition, offset, reason, stage)]: they keep the new reason."""
    if not failed:
        return
    conn.register("mirador_failed", _keys_table(failed, with_reason=True))
    try:
        conn.execute(
            "update loader.dead_letters as dead set reason = failed.reason, stage = failed.stage "
            "from mirador_failed as failed where dead.topic = failed.topic and dead.partition = failed.partition "
            'and dead."offset" = failed."offset"'
        )
    finally:
        conn.unregister("mirador_failed")


def _keys_table(rows: list[tuple], with_reason: bool = False) -> pa.Table:
    import pyarrow as pa

    columns = {
        "topic": pa.array([r[0] for r in rows], pa.string()),
        "partition": pa.array([r[1] for r in rows], pa.int32()),
        "offset": pa.array([r[2] for r in rows], pa.int64()),
    }
    if with_reason:
        columns |= {"reason": pa.array([r[3] for r in rows], pa.string()), "stage": pa.array([r[4] for r in rows])}
    return pa.table(columns)


def add_transactions(
    conn: duckdb.DuckDBPyConnection, markers: pa.Table, batch_id: int, landed_before: dict[TP, int]
) -> int:
    """The batch's transaction markers, but for those at offsets landed before."""
    return _add_side_rows(conn, "loader.transactions", markers, [batch_id], landed_before)


def _add_side_rows(
    conn: duckdb.DuckDBPyConnection, target: str, rows: pa.Table, stamps: list, landed_before: dict[TP, int]
) -> int:
    conn.register("mirador_side", rows)
    landed = (
        " or ".join(
            f'(topic = {_literal(t)} and partition = {p} and "offset" < {o})' for (t, p), o in landed_before.items()
        )
        or "false"
    )
    try:
        return conn.execute(
            f"insert into {target} select *, {', '.join('?' for _ in stamps)} from mirador_side where not ({landed})",
            stamps,
        ).fetchone()[0]
    finally:
        conn.unregister("mirador_side")


# -- Raw tables ---------------------------------------------------------------------------------------


def raw_table_keys(conn: duckdb.DuckDBPyConnection) -> dict[str, list[str] | None]:
    """Raw table -> its primary-key columns (None until a delete has told them)."""
    return dict(conn.execute("select raw_table, key_columns from loader.tables").fetchall())


def record_raw_table(
    conn: duckdb.DuckDBPyConnection, table: str, topic: str, service: str, key_columns: list[str] | None, batch_id: int
) -> None:
    conn.execute(
        "insert or ignore into loader.tables values (?, ?, ?, ?, ?)", [table, topic, service, key_columns, batch_id]
    )


def record_key_columns(conn: duckdb.DuckDBPyConnection, table: str, key_columns: list[str]) -> None:
    conn.execute("update loader.tables set key_columns = ? where raw_table = ?", [key_columns, table])


# -- Source progress ----------------------------------------------------------------------------------


def store_topic_progress(conn: duckdb.DuckDBPyConnection, rows: list[list], behind: set[str], topics: set[str]) -> None:
    """Per topic [topic, service, last LSN, last commit time, behind, batch]; then, of every topic read,
    which still have unread messages (`behind`)."""
    _upsert(
        conn,
        "insert into loader.topic_progress",
        rows,
        "on conflict (topic) do update set "
        "last_lsn = greatest(loader.topic_progress.last_lsn, excluded.last_lsn), "
        "last_commit_ts = greatest(loader.topic_progress.last_commit_ts, excluded.last_commit_ts), "
        "batch_id = excluded.batch_id",
    )
    if topics:
        conn.execute(
            "update loader.topic_progress set behind = list_contains(?, topic) where list_contains(?, topic)",
            [sorted(behind), sorted(topics)],
        )


def store_source_progress(
    conn: duckdb.DuckDBPyConnection, rows: list[list], caught_up: set[str], loaded_at: datetime
) -> None:
    """Per service [service, last LSN, last commit time, landed at, heartbeat]; services whose every
    topic was read to its end are all landed up to their newest position (`caught_up`)."""
    _upsert(
        conn,
        "insert into loader.source_progress (service, last_lsn, last_commit_ts, last_loaded_at, heartbeat_at)",
        rows,
        "on conflict (service) do update set "
        "last_lsn = greatest(loader.source_progress.last_lsn, excluded.last_lsn), "
        "last_commit_ts = greatest(loader.source_progress.last_commit_ts, excluded.last_commit_ts), "
        "last_loaded_at = coalesce(excluded.last_loaded_at, loader.source_progress.last_loaded_at), "
        "heartbeat_at = greatest(loader.source_progress.heartbeat_at, excluded.heartbeat_at)",
    )
    if caught_up:
        conn.execute(
            "update loader.source_progress set caught_up_lsn = last_lsn, "
            "caught_up_commit_ts = last_commit_ts, caught_up_at = ? where service in "
            f"({', '.join('?' for _ in caught_up)})",
            [loaded_at, *sorted(caught_up)],
        )


def read_watermark(conn: duckdb.DuckDBPyConnection) -> dict[str, dict]:
    """Per service, the source position up to which every change is in the warehouse.

    `lsn`/`commit_ts`: every change of the service committed at or before it has landed (topics
    still behind hold it back to what they landed); wait for `lsn` >= a command's position to read
    your write. `latest_lsn`/`latest_commit_ts`: the newest change landed from any topic.
    """
    exists = conn.execute(
        "select count(*) from duckdb_tables() where database_name = current_database() "
        "and schema_name = 'loader' and table_name = 'topic_progress'"
    ).fetchall()[0][0]
    if not exists:
        return {}
    rows = conn.execute("""
        select
            topics.service,
            coalesce(min(topics.last_lsn) filter (where topics.behind), max(topics.last_lsn)),
            coalesce(min(topics.last_commit_ts) filter (where topics.behind), max(topics.last_commit_ts)),
            max(topics.last_lsn),
            max(topics.last_commit_ts),
            any_value(progress.heartbeat_at)
        from loader.topic_progress as topics
        left join loader.source_progress as progress using (service)
        where topics.last_lsn is not null
        group by topics.service
        order by topics.service
    """).fetchall()
    return {
        service: {
            "lsn": lsn,
            "commit_ts": _iso(commit),
            "latest_lsn": latest_lsn,
            "latest_commit_ts": _iso(latest_commit),
            "heartbeat_at": _iso(heartbeat),
        }
        for service, lsn, commit, latest_lsn, latest_commit, heartbeat in rows
    }


# -- Builds -------------------------------------------------------------------------------------------


def last_built_batch(conn: duckdb.DuckDBPyConnection, *, tested: bool) -> int:
    """The last batch a successful build read (`tested`: one whose data tests ran and passed); -1 for none."""
    return conn.execute(
        "select coalesce(max(through_batch), -1) from loader.builds where success" + (" and tested" if tested else "")
    ).fetchall()[0][0]


def never_built(conn: duckdb.DuckDBPyConnection) -> bool:
    return conn.execute("select count(*) = 0 from loader.builds where success").fetchall()[0][0]


def batches_after(conn: duckdb.DuckDBPyConnection, after: int, through: int | None = None) -> tuple[int, set[str]]:
    """The last batch after `after` (up to `through`) and the raw tables those batches changed."""
    last, tables = conn.execute(
        "select coalesce(max(batch_id), ?), list_distinct(flatten(list(tables))) from loader.batches "
        "where batch_id > ? and batch_id <= coalesce(?, batch_id)",
        [after, after, through],
    ).fetchall()[0]
    return last, {t.split(".")[-1] for t in tables or []}


def record_build(
    conn: duckdb.DuckDBPyConnection,
    build_id: str,
    *,
    seconds: float,
    through_batch: int,
    selected: list[str],
    success: bool,
    tested: bool,
) -> None:
    """A build that just finished, `seconds` after it started: what the next one starts after."""
    conn.execute(
        "insert into loader.builds (build_id, started_at, finished_at, through_batch, selected, success, "
        "seconds, tested) values (?, now() - to_microseconds(?::bigint), now(), ?, ?, ?, ?, ?)",
        [build_id, int(seconds * 1e6), through_batch, " ".join(selected), success, seconds, tested],
    )


def built_here(conn: duckdb.DuckDBPyConnection, build_id: str) -> bool:
    """Whether this warehouse recorded `build_id` as a successful build (False without a ledger)."""
    try:
        return (
            conn.execute("select count(*) from loader.builds where build_id = ? and success", [build_id]).fetchone()[0]
            > 0
        )
    except duckdb.CatalogException:
        return False


def _upsert(conn: duckdb.DuckDBPyConnection, insert: str, rows: list[list], on_conflict: str) -> None:
    """One statement for all rows: each statement costs milliseconds when dbt shares the instance."""
    if rows:
        values = ", ".join("(" + ", ".join("?" * len(rows[0])) + ")" for _ in rows)
        conn.execute(f"{insert} values {values} {on_conflict}", [value for row in rows for value in row])


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")
