"""Publication by changes: each publication, an earlier one plus the rows that differ, must hold exactly
what the marts hold, whatever changed (values to and from NULL, keys gone and back, columns added),
and must never touch a file a reader has open or can still open."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import duckdb

from warehouse.publish import current_publication, publish

TABLES = {"orders": ["order_id"], "movements": ["product_id", "version"], "unkeyed": []}


def _marts(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("create schema marts")
    conn.execute(
        "create table marts.orders (order_id integer, status varchar, total decimal(12,2), "
        "paid boolean, _batch_id bigint)"
    )
    conn.execute("create table marts.movements (product_id integer, version integer, balance bigint, _batch_id bigint)")
    conn.execute("create table marts.unkeyed (name varchar, n integer)")


def _change(conn: duckdb.DuckDBPyConnection, rng: random.Random, batch: int) -> None:
    """Random inserts, updates (also to and from NULL, also of several columns) and deletes."""
    for _ in range(rng.randint(0, 30)):
        order = rng.randint(1, 60)
        kind = rng.random()
        if kind < 0.3:
            conn.execute("delete from marts.orders where order_id = ?", [order])
        elif conn.execute("select count(*) from marts.orders where order_id = ?", [order]).fetchone()[0]:
            conn.execute(
                "update marts.orders set status = ?, total = ?, _batch_id = ? where order_id = ?",
                [
                    rng.choice(["placed", "paid", None]),
                    rng.choice([None, rng.randint(0, 999) / 4]),
                    batch if rng.random() < 0.5 else 0,
                    order,
                ],
            )
        else:
            conn.execute(
                "insert into marts.orders (order_id, status, total, paid, _batch_id) values (?, ?, ?, ?, ?)",
                [order, rng.choice(["placed", None]), rng.randint(0, 999) / 4, rng.choice([True, False, None]), batch],
            )
    for _ in range(rng.randint(0, 20)):
        product, version = rng.randint(1, 8), rng.randint(1, 8)
        conn.execute("delete from marts.movements where product_id = ? and version = ?", [product, version])
        if rng.random() < 0.7:
            conn.execute(
                "insert into marts.movements values (?, ?, ?, ?)",
                [product, version, rng.choice([None, rng.randint(-5, 50)]), batch],
            )
    if rng.random() < 0.3:
        conn.execute("insert into marts.unkeyed values (?, ?)", [rng.choice(["a", None]), rng.randint(0, 3)])


def _differences(conn: duckdb.DuckDBPyConnection, table: str) -> int:
    columns = ", ".join(
        name
        for (name,) in conn.execute(
            "select column_name from information_schema.columns where table_schema = 'marts' and table_name = ? "
            "and column_name not like '\\_%' escape '\\' order by ordinal_position",
            [table],
        ).fetchall()
    )
    return conn.execute(f"""
        select count(*) from (
            (select {columns} from marts.{table} except all select {columns} from published.main.{table})
            union all
            (select {columns} from published.main.{table} except all select {columns} from marts.{table}))
    """).fetchone()[0]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_publications_by_changes_equal_the_marts(tmp_path: Path) -> None:
    directory = tmp_path / "published"
    conn = duckdb.connect(str(tmp_path / "work.duckdb"))
    _marts(conn)
    rng = random.Random(7)
    increments, tables = [], dict(TABLES)
    for batch in range(1, 41):
        _change(conn, rng, batch)
        if batch == 20:  # a column added to a mart: that table is copied whole, the others by changes
            conn.execute("alter table marts.orders add column currency varchar")
            conn.execute("update marts.orders set currency = 'EUR' where order_id % 2 = 0")
        if batch == 30:  # a mart no longer exposed leaves the publication
            del tables["unkeyed"]
        previous = current_publication(directory)
        before = _digest(previous.path(directory)) if previous else None
        publication = publish(conn, directory, f"b{batch}", batch, tables, {}, keep=50, rewrite_every=8)
        increments.append(publication.increments)
        if previous:
            assert _digest(previous.path(directory)) == before, "a published file was written again"
        conn.execute(f"attach '{publication.path(directory)}' as published (read_only)")
        try:
            for table in tables:
                assert _differences(conn, table) == 0, f"publication {batch}: {table} differs from the mart"
            published = {
                name
                for (name,) in conn.execute(
                    "select table_name from information_schema.tables where table_catalog = 'published'"
                ).fetchall()
            }
            assert {name for name in published if not name.startswith("_changes__")} == set(tables) | {"_publication"}
            assert {name.removeprefix("_changes__") for name in published if name.startswith("_changes__")} <= set(
                tables
            )
            assert conn.execute("select through_batch from published.main._publication").fetchone()[0] == batch
        finally:
            conn.execute("detach published")
    # Whole copies at the first publication and every eighth; changes applied in between.
    assert increments[:10] == [0, 1, 2, 3, 4, 5, 6, 7, 0, 1]


def test_a_missing_previous_file_means_a_whole_copy(tmp_path: Path) -> None:
    directory = tmp_path / "published"
    conn = duckdb.connect(str(tmp_path / "work.duckdb"))
    _marts(conn)
    _change(conn, random.Random(1), 1)
    first = publish(conn, directory, "b1", 1, TABLES, {})
    first.path(directory).unlink()
    second = publish(conn, directory, "b2", 2, TABLES, {})
    assert second.increments == 0
    conn.execute(f"attach '{second.path(directory)}' as published (read_only)")
    assert all(_differences(conn, table) == 0 for table in TABLES)


def test_publications_by_built_batch_equal_the_marts(tmp_path: Path) -> None:
    """Marts stamped with `_built_batch` by the pipeline's builds: only rows stamped after the previous
    publication are applied, keys gone are deleted, and rows an analyst's dbt run left unstamped are
    compared whole. After a publication this warehouse did not build, every row is compared."""
    directory = tmp_path / "published"
    conn = duckdb.connect(str(tmp_path / "work.duckdb"))
    conn.execute("create schema marts")
    conn.execute("create schema loader")
    conn.execute("create table loader.builds (build_id varchar primary key, success boolean)")
    conn.execute(
        "create table marts.orders (order_id integer, status varchar, total decimal(12,2), "
        "_batch_id bigint, _built_batch bigint)"
    )
    rng = random.Random(11)
    tables = {"orders": ["order_id"]}
    for batch in range(1, 61):
        analyst = batch % 9 == 0  # dbt run without the pipeline's var: rows it writes are unstamped
        stamp = None if analyst else batch
        for _ in range(rng.randint(0, 25)):
            order = rng.randint(1, 80)
            conn.execute("delete from marts.orders where order_id = ?", [order])
            if rng.random() < 0.75:
                conn.execute(
                    "insert into marts.orders values (?, ?, ?, ?, ?)",
                    [order, rng.choice(["placed", "paid", None]), rng.choice([None, rng.randint(0, 99)]), batch, stamp],
                )
        if batch % 13 == 0:  # a build that failed after writing: stamped, recorded as failed, not published
            conn.execute("insert into loader.builds values (?, false)", [f"failed{batch}"])
            continue
        build = f"b{batch}"
        if batch == 40:  # publication 40 comes from another warehouse, whose marts differ from these
            other = duckdb.connect(str(tmp_path / f"other{batch}.duckdb"))
            other.execute("create schema marts")
            other.execute(
                "create table marts.orders (order_id integer, status varchar, total decimal(12,2), "
                "_batch_id bigint, _built_batch bigint)"
            )
            other.execute("insert into marts.orders values (1, 'elsewhere', 1, 1, 1), (999, 'elsewhere', 2, 1, 1)")
            publish(other, directory, build, batch, tables, {}, keep=3, rewrite_every=25)
            other.close()
            continue
        conn.execute("insert into loader.builds values (?, true)", [build])
        before = current_publication(directory)
        publication = publish(conn, directory, build, batch, tables, {}, keep=3, rewrite_every=25)
        conn.execute(f"attach '{publication.path(directory)}' as published (read_only)")
        conn.execute(f"attach '{(before or publication).path(directory)}' as before (read_only)")
        try:
            assert _differences(conn, "orders") == 0, f"publication {batch} differs from the mart"
            if before is None:
                continue
            # Its changes name every key whose row differs from the publication before it.
            changes = conn.execute("select changes from published.main._publication").fetchone()[0]
            assert f'"orders": "{before.build_id}"' in changes
            unnamed = conn.execute(
                "select count(*) from (select order_id from ((select * from "
                "before.main.orders except select * from published.main.orders) "
                "union all (select * from published.main.orders except "
                "select * from before.main.orders))) "
                "anti join published.main._changes__orders using (order_id)"
            ).fetchone()[0]
            assert unnamed == 0, f"publication {batch}: {unnamed} changed keys not named"
        finally:
            conn.execute("detach published")
            conn.execute("detach before")


def test_a_mart_rebuilt_whole_is_copied_whole_and_still_names_its_changes(tmp_path: Path) -> None:
    """A build that rewrote most of a mart makes the publication copy it whole, and its changes still
    name every key written and every key gone: readers apply them instead of comparing the table. So
    does a new file, compared with the current publication."""
    directory = tmp_path / "published"
    conn = duckdb.connect(str(tmp_path / "work.duckdb"))
    conn.execute("create schema marts")
    conn.execute("create schema loader")
    conn.execute("create table loader.builds (build_id varchar primary key, success boolean)")
    conn.execute("create table marts.orders (order_id integer, status varchar, _built_batch bigint)")
    conn.execute("insert into marts.orders select i, 'placed', 1 from range(1, 101) t(i)")
    conn.execute("insert into loader.builds values ('b1', true), ('b2', true)")
    publish(conn, directory, "b1", 1, {"orders": ["order_id"]}, {})
    conn.execute("delete from marts.orders where order_id > 90")
    conn.execute("update marts.orders set status = 'paid', _built_batch = 2 where order_id <= 60")
    publication = publish(conn, directory, "b2", 2, {"orders": ["order_id"]}, {})
    conn.execute(f"attach '{publication.path(directory)}' as published (read_only)")
    assert _differences(conn, "orders") == 0
    changes = conn.execute("select changes from published.main._publication").fetchone()[0]
    assert '"orders": "b1"' in changes
    named = conn.execute(
        "select _deleted, count(*), min(order_id), max(order_id) from published.main._changes__orders "
        "group by all order by all"
    ).fetchall()
    assert named == [(False, 60, 1, 60), (True, 10, 91, 100)]
    conn.execute("detach published")
    # A new file (`rewrite_every` reached) counts its changes from the current publication.
    conn.execute("delete from marts.orders where order_id = 1")
    conn.execute("update marts.orders set status = 'shipped', _built_batch = 3 where order_id = 2")
    conn.execute("insert into loader.builds values ('b3', true)")
    publication = publish(conn, directory, "b3", 3, {"orders": ["order_id"]}, {}, rewrite_every=1)
    assert publication.increments == 0
    conn.execute(f"attach '{publication.path(directory)}' as published (read_only)")
    assert _differences(conn, "orders") == 0
    assert '"orders": "b2"' in conn.execute("select changes from published.main._publication").fetchone()[0]
    assert conn.execute("select order_id, _deleted from published.main._changes__orders order by all").fetchall() == [
        (1, True),
        (2, False),
    ]


def test_the_oldest_kept_publication_is_written_in_place(tmp_path: Path) -> None:
    """With `keep` older publications kept, each new one is the oldest file renamed and brought up to
    date: as many files as before, each equal to the marts, and none of the others written."""
    directory = tmp_path / "published"
    conn = duckdb.connect(str(tmp_path / "work.duckdb"))
    _marts(conn)
    rng = random.Random(5)
    inodes: dict[int, str] = {}
    reused = 0
    for batch in range(1, 25):
        _change(conn, rng, batch)
        others = {p: _digest(p) for p in directory.glob("*.duckdb")}
        oldest = min(others, key=lambda p: p.stat().st_mtime) if len(others) == 3 else None
        publication = publish(conn, directory, f"b{batch}", batch, TABLES, {}, keep=2, rewrite_every=10)
        path = publication.path(directory)
        reused += path.stat().st_ino in inodes
        inodes[path.stat().st_ino] = path.name
        assert {p.name for p in directory.iterdir()} == {p.name for p in others if p != oldest} | {
            path.name,
            "current.json",
        }
        for other, digest in others.items():
            if other != oldest:
                assert _digest(other) == digest, "a kept publication was written again"
        conn.execute(f"attach '{path}' as published (read_only)")
        try:
            assert all(_differences(conn, table) == 0 for table in TABLES), f"publication {batch} differs"
            assert conn.execute("select build_id, increments from published.main._publication").fetchone() == (
                publication.build_id,
                publication.increments,
            )
        finally:
            conn.execute("detach published")
    assert reused >= 18, "the oldest file was copied instead of written in place"


def _three_publications(tmp_path: Path, seed: int) -> tuple[duckdb.DuckDBPyConnection, Path, random.Random]:
    """Marts changed and published three times with `keep=2`: b1 is the oldest kept, due for reuse."""
    directory = tmp_path / "published"
    conn = duckdb.connect(str(tmp_path / "work.duckdb"))
    _marts(conn)
    rng = random.Random(seed)
    for batch in range(1, 4):
        _change(conn, rng, batch)
        publish(conn, directory, f"b{batch}", batch, TABLES, {}, keep=2)
    return conn, directory, rng


HOLDER = """
import duckdb, hashlib, os, sys
path = sys.argv[1]
conn = duckdb.connect(path, read_only=True)
fd = os.open(path, os.O_RDONLY)
print("open", flush=True)
sys.stdin.readline()
data = os.pread(fd, os.fstat(fd).st_size, 0)
print(hashlib.sha256(data).hexdigest(), conn.execute("select build_id from _publication").fetchone()[0], flush=True)
"""


def test_a_publication_a_reader_holds_is_not_written(tmp_path: Path) -> None:
    """The oldest file is due for reuse, but a reader process has it open: DuckDB's lock refuses the
    write, the current file is copied instead, and the reader goes on reading what it opened."""
    conn, directory, rng = _three_publications(tmp_path, seed=3)
    oldest = directory / "b1.duckdb"
    digest = _digest(oldest)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(oldest)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        _change(conn, rng, 4)
        publication = publish(conn, directory, "b4", 4, TABLES, {}, keep=2)
        held, _ = holder.communicate("go\n", timeout=60)
    finally:
        holder.kill()
    assert held.split() == [digest, "b1"]
    assert not oldest.exists() and publication.increments == 3  # b3 (2) copied, plus one
    assert sorted(p.name for p in directory.glob("*.duckdb")) == ["b2.duckdb", "b3.duckdb", "b4.duckdb"]
    conn.execute(f"attach '{publication.path(directory)}' as published (read_only)")
    assert all(_differences(conn, table) == 0 for table in TABLES)


def test_a_kept_file_that_is_not_a_publication_is_dropped(tmp_path: Path) -> None:
    """The oldest file kept cannot be opened (damaged by hand, say): it is removed and the current file
    copied instead, and the publication is whole and right."""
    conn, directory, rng = _three_publications(tmp_path, seed=9)
    damaged = directory / "b1.duckdb"
    damaged.write_bytes(b"not a database" * 1000)
    os.utime(damaged, (0, 0))  # still the oldest
    _change(conn, rng, 4)
    publication = publish(conn, directory, "b4", 4, TABLES, {}, keep=2)
    assert sorted(p.name for p in directory.glob("*")) == ["b2.duckdb", "b3.duckdb", "b4.duckdb", "current.json"]
    conn.execute(f"attach '{publication.path(directory)}' as published (read_only)")
    assert all(_differences(conn, table) == 0 for table in TABLES)
