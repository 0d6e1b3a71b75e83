"""`mirador verify` copies each source table out of Postgres as CSV and reads it into DuckDB: every value
comes back as Postgres holds it, however far down the table its first quoted value is."""

from __future__ import annotations

import uuid

import duckdb
import psycopg
import pytest

from cdc import postgres
from warehouse.verify import _copy

pytestmark = pytest.mark.stack

AWKWARD = ["a,b", 'say "hi"', "two\nlines", "", None, ",", '"', "ᠢ,.ᠢ,"]


def test_a_table_copies_whole_with_quoted_values_after_the_sniffers_sample(stack_settings, tmp_path):
    table = f"verify_copy_{uuid.uuid4().hex[:8]}"  # in the `postgres` database, which nothing captures
    with psycopg.connect(postgres.superuser_dsn(stack_settings), autocommit=True) as conn:
        conn.execute(f"create table public.{table} (id int primary key, name text)")
        try:
            # 30,000 plain rows first: DuckDB's CSV sniffer reads 20,480 to guess the dialect
            conn.execute(f"insert into public.{table} select i, 'plain ' || i from generate_series(1, 30000) i")
            with conn.cursor() as cur:
                cur.executemany(
                    f"insert into public.{table} values (%s, %s)",
                    [(30001 + n, value) for n, value in enumerate(AWKWARD)],
                )
            with duckdb.connect() as db:
                _copy(conn, db, "copied", table, ["id", "name"], tmp_path)
                got = db.execute("select id::int, name from copied where id::int > 30000 order by 1").fetchall()
                assert db.execute("select count(*) from copied").fetchone()[0] == 30000 + len(AWKWARD)
        finally:
            conn.execute(f"drop table public.{table}")
    assert got == [(30001 + n, value) for n, value in enumerate(AWKWARD)]
