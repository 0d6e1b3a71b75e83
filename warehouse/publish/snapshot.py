"""A publication: the exposed marts written into a DuckDB file no reader can open yet, then switched to.

Each publication is a new file name, written while readers cannot open it, synced, renamed into
their reach and pointed at (`directory.switch`). It starts from an earlier publication and applies
what changed since, keyed by each mart's primary key (ADR 8): the rows builds wrote since that
publication (stamped with `_built_batch`), rows nothing stamped, found by comparing them whole (as
every row is when that publication is not this warehouse's), and the keys gone, looked for only when
the published copy ends up with more rows than the mart; a mart most of whose rows a build rewrote is
copied whole instead, its changed keys still named. The earlier one is the oldest publication
kept, the one pruning would remove (ADR 17): it is renamed out of readers' reach, then written in
place, unless a reader still has it open (DuckDB's file lock says so); then, and while fewer than
`keep` are kept, the current file is copied instead. A file is never written while a reader can open
it. After `rewrite_every` publications in place, after a schema change, or without an earlier file,
the marts are copied whole, which also drops the space deleted rows left.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from warehouse import ledger
from warehouse.publish.directory import (
    Publication,
    current_publication,
    fsync,
    now,
    older_files,
    prune,
    switch,
)

CURRENT = "mirador_current"
"""The current publication, attached read-only while the next is written: its changes count from it."""

WHOLE_ABOVE = 0.2
"""A mart whose builds rewrote more than this share of its rows since the last publication is copied
whole."""


def publish(
    conn: duckdb.DuckDBPyConnection,
    directory: Path,
    build_id: str,
    through_batch: int,
    tables: Mapping[str, Sequence[str]],
    watermark: dict[str, dict],
    *,
    tested_through_batch: int | None = None,
    keep: int = 3,
    rewrite_every: int = 50,
    catalog: Mapping[str, dict] | None = None,
) -> Publication:
    """Publish `marts.<table>` for each exposed table (name -> primary key columns) into
    `<directory>/<build_id>.duckdb` and switch to it.

    `conn` is the working file, held by the caller; `watermark` is the build's (read before it ran);
    `catalog` describes the exposed tables (the dbt manifest's descriptions and `meta`), for readers.
    Besides the tables, the file holds `_publication` (one row: build id, watermark, catalog, and per
    table the build its changes are counted from) and, per table, `_changes__<table>`: the keys upserted
    or deleted since that build (a superset of what changed; NULL in `changes`: there was no earlier
    publication to count from, or the table's columns changed, compare it to know).
    """
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{build_id}.duckdb"
    partial = target.with_suffix(".partial")
    built_at = now()
    with _unsynced(conn):
        base = _attach_base(conn, directory, partial, keep, rewrite_every)
        increments = base.increments + 1 if base else 0
        current = _attach_current(conn, directory)
        try:
            marts, published = _columns(conn, "marts"), _columns(conn, "publication")
            for bookkeeping in [name for name in published if name.startswith("_")]:  # the base's own
                conn.execute(f'drop table publication.main."{bookkeeping}"')
                del published[bookkeeping]
            current_columns = _columns(conn, CURRENT) if current else {}
            since_base = _published_through(conn, base, through_batch) if base else None
            since_current = _published_through(conn, current, through_batch) if current else None
            changes: dict[str, str | None] = {}
            for table, key in tables.items():
                columns = [(name, kind) for name, kind in marts.get(table, []) if not name.startswith("_")]
                names = [name for name, _ in columns]
                stamped = ("_built_batch", "BIGINT") in marts.get(table, [])
                if base and key and published.get(table) == columns:
                    _apply_changes(conn, table, names, list(key), since_base if stamped else None)
                else:
                    conn.execute(f'drop table if exists publication.main."{table}"')
                    conn.execute(
                        f'create table publication.main."{table}" as select {_quoted(names)} from marts."{table}"'
                    )
                changes[table] = None
                if current and key and current_columns.get(table) == columns:
                    _name_changes(conn, table, names, list(key), since_current if stamped else None)
                    changes[table] = current.build_id
            for stale in published.keys() - tables.keys():
                conn.execute(f'drop table publication.main."{stale}"')
            conn.execute(
                "create table publication.main._publication as select ? as build_id, ?::timestamptz as "
                "built_at, ? as through_batch, ?::json as watermark, ? as increments, "
                "?::json as catalog, ?::json as changes",
                [
                    build_id,
                    built_at,
                    through_batch,
                    json.dumps(watermark),
                    increments,
                    json.dumps(dict(catalog or {})),
                    json.dumps(changes),
                ],
            )
        finally:
            conn.execute("detach publication")
            if current:
                conn.execute(f"detach {CURRENT}")
    fsync(partial)
    os.replace(partial, target)
    publication = Publication(
        build_id, target.name, built_at, now(), through_batch, list(tables), watermark, tested_through_batch, increments
    )
    switch(directory, publication)
    prune(directory, keep)
    return publication


@contextmanager
def _unsynced(conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Without DuckDB's syncs: the publication file is synced whole before it is renamed into readers'
    reach, so syncing its WAL at each statement and its blocks at the checkpoint detaching makes would
    protect nothing (ADR 17). The setting is the instance's; meanwhile only the publication is written
    (temporary tables aside): `mirador run` holds its landings while it publishes."""
    synced = conn.execute("select current_setting('fsync_mode')").fetchone()[0]
    conn.execute("set fsync_mode = 'NONE'")
    try:
        yield
    finally:
        conn.execute(f"set fsync_mode = '{synced}'")


@dataclass
class _Base:
    """What an earlier publication file, attached as `publication` to be written into, holds."""

    build_id: str
    through_batch: int
    increments: int


def _attach_base(
    conn: duckdb.DuckDBPyConnection, directory: Path, partial: Path, keep: int, rewrite_every: int
) -> _Base | None:
    """Attach `partial` as `publication`: the oldest kept publication, which pruning would remove next,
    renamed to it; else a copy of the current one; else (none, or `rewrite_every` reached) a new file.
    Returns what it holds, None for a new file."""
    for stale in directory.glob("*.partial*"):  # left by a publication that failed: one publishes at a time
        stale.unlink(missing_ok=True)
    current = current_publication(directory)
    older = older_files(directory, current)
    if current is not None and keep and len(older) >= keep:
        os.rename(older[-1], partial)
        try:
            conn.execute(f"attach '{partial}' as publication")
        except duckdb.Error:  # a reader still has it open (DuckDB's lock), or it cannot be opened at all:
            partial.unlink()  # a reader keeps it, unlinked, as after pruning
        else:
            base = _held(conn)
            if base is not None and base.increments + 1 < rewrite_every:
                return base
            conn.execute("detach publication")
            partial.unlink()
            current = None  # its lineage reached `rewrite_every` (or it is not a publication): start anew
    if current is not None and current.increments + 1 < rewrite_every and current.path(directory).exists():
        shutil.copyfile(current.path(directory), partial)
        conn.execute(f"attach '{partial}' as publication")
        return _Base(current.build_id, current.through_batch, current.increments)
    conn.execute(f"attach '{partial}' as publication")
    return None


def _attach_current(conn: duckdb.DuckDBPyConnection, directory: Path) -> _Base | None:
    """The current publication attached read-only as `CURRENT`; None without one (or one that cannot be
    opened)."""
    current = current_publication(directory)
    if current is None:
        return None
    try:
        conn.execute(f"attach '{current.path(directory)}' as {CURRENT} (read_only)")
    except duckdb.Error:
        return None
    held = _held(conn, CURRENT)
    if held is None or held.build_id != current.build_id:
        conn.execute(f"detach {CURRENT}")
        return None
    return held


def _held(conn: duckdb.DuckDBPyConnection, catalog: str = "publication") -> _Base | None:
    """The publication an attached file holds, from its `_publication` row."""
    try:
        row = conn.execute(f"select build_id, through_batch, increments from {catalog}.main._publication").fetchone()
    except duckdb.Error:  # a publication from before `increments` was stored, or not one at all
        return None
    return None if row is None else _Base(*row)


def _columns(conn: duckdb.DuckDBPyConnection, catalog: str) -> dict[str, list[tuple]]:
    """Per table of the marts (or of the publication), its (name, type) columns in order."""
    where = (
        "database_name = current_database() and schema_name = 'marts'"
        if catalog == "marts"
        else f"database_name = '{catalog}' and schema_name = 'main'"
    )
    tables: dict[str, list[tuple]] = {}
    for table, name, data_type in conn.execute(  # duckdb_columns(): half the time of information_schema
        f"select table_name, column_name, data_type from duckdb_columns() where {where} "
        "order by table_name, column_index"
    ).fetchall():
        tables.setdefault(table, []).append((name, data_type))
    return tables


def _published_through(conn: duckdb.DuckDBPyConnection, base: _Base, through_batch: int) -> int | None:
    """The batch the publication written into was built through, when it was built from this warehouse
    (its build is recorded here) and not from batches this one has not reached: rows a build stamped
    with a later `_built_batch` are the only ones written since. None: compare the rows instead."""
    if through_batch < base.through_batch:
        return None
    return base.through_batch if ledger.built_here(conn, base.build_id) else None


def _quoted(names) -> str:
    return ", ".join(f'"{name}"' for name in names)


def _apply_changes(
    conn: duckdb.DuckDBPyConnection, table: str, columns: list[str], key: list[str], since: int | None
) -> None:
    """Make the published copy of `table` equal the mart: rows that differ or are gone are deleted by
    key, rows new or changed are inserted; or, when a build rewrote most of the mart (after a truncate,
    say), the mart is copied whole, which is cheaper.

    With `since`, the rows a build wrote after that batch (`_built_batch`) are the changed ones, and
    rows no pipeline build stamped (an analyst's dbt run) are compared; without, every row is compared.
    Set operations compare NULLs as equal.
    """
    names, keys = _quoted(columns), _quoted(key)
    published, mart = f'publication.main."{table}"', f'marts."{table}"'
    changed = _changed(conn, mart, published, names, since)
    if changed is None:
        conn.execute(f"drop table {published}")
        conn.execute(f"create table {published} as select {names} from {mart}")
        return
    # Materialized: the planner then knows how few rows changed, and the join below stays small.
    conn.execute(f"create or replace temporary table mirador_changed as {changed}")
    match = " and ".join(f'{published}."{name}" = gone."{name}"' for name in key)
    conn.execute(f"delete from {published} using (select {keys} from mirador_changed) as gone where {match}")
    conn.execute(f"insert into {published} select {names} from mirador_changed")
    conn.execute("drop table mirador_changed")
    # Every row of the mart is now published once: published rows beyond the mart's count are rows whose
    # key is gone from it. Most cycles delete nothing, and this spares them a join of all the keys.
    if _gone_maybe(conn, mart, published, keys):
        conn.execute(f"delete from {published} using ({_gone(mart, published, keys)}) as gone where {match}")


def _name_changes(
    conn: duckdb.DuckDBPyConnection, table: str, columns: list[str], key: list[str], since: int | None
) -> None:
    """`_changes__<table>`: the keys of the rows new or changed since the current publication
    (`_deleted` false), then of those gone from it (true), for readers to bring their copy from it to
    this one by reading only those keys (the read API's serving copy)."""
    names, keys = _quoted(columns), _quoted(key)
    current, mart = f'{CURRENT}.main."{table}"', f'marts."{table}"'
    changes = f'publication.main."_changes__{table}"'
    changed = _changed(conn, mart, current, names, since, whole_above=None)
    conn.execute(f"create table {changes} as select {keys}, false as _deleted from ({changed})")
    if _gone_maybe(conn, mart, current, keys, named=changes):
        conn.execute(f"insert into {changes} select {keys}, true from ({_gone(mart, current, keys)})")


def _changed(
    conn: duckdb.DuckDBPyConnection,
    mart: str,
    published: str,
    names: str,
    since: int | None,
    whole_above: float | None = WHOLE_ABOVE,
) -> str | None:
    """A query for the mart's rows new or changed since `published`; None when more than `whole_above`
    of them are."""

    def differing(where: str = "") -> str:
        return f"select {names} from {mart} {where} except select {names} from {published}"

    if since is None:
        return differing()
    rows, stamped, unstamped = conn.execute(
        f"select count(*), count(*) filter (where _built_batch > {int(since)}), "
        f"count(*) filter (where _built_batch is null) from {mart}"
    ).fetchone()
    if whole_above is not None and stamped > whole_above * rows:
        return None
    changed = f"select {names} from {mart} where _built_batch > {int(since)}"
    return changed + f" union all ({differing('where _built_batch is null')})" if unstamped else changed


def _gone_maybe(conn: duckdb.DuckDBPyConnection, mart: str, published: str, keys: str, named: str = "") -> bool:
    """Whether some of `published`'s keys may be gone from the mart: with the rows it holds now (or, with
    `named`, would hold once those keys are written), it would hold more than the mart."""
    if not named:
        return conn.execute(f"select (select count(*) from {published}) > (select count(*) from {mart})").fetchone()[0]
    return conn.execute(
        f"select (select count(*) from {published}) - (select count(*) from {published} semi join {named} "
        f"using ({keys})) + (select count(*) from {named}) > (select count(*) from {mart})"
    ).fetchone()[0]


def _gone(mart: str, published: str, keys: str) -> str:
    return f"select {keys} from {published} except select {keys} from {mart}"
