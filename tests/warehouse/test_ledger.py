"""The ledger keeps the stages' bookkeeping; a ledger an older loader wrote is brought up to date in place."""

from __future__ import annotations

import duckdb

from warehouse import ledger


def test_an_older_ledger_keeps_its_batches_under_the_current_names(tmp_path):
    with duckdb.connect(str(tmp_path / "old.duckdb")) as conn:
        conn.execute("create schema loader")
        conn.execute(
            "create table loader.batches (batch_id bigint primary key, committed_at timestamptz, "
            "messages bigint, events bigint, tombstones bigint, dead_letters bigint, transactions bigint, "
            "value_bytes bigint, skipped_replayed bigint, tables varchar[])"
        )
        conn.execute("insert into loader.batches values (1, now(), 10, 8, 0, 0, 0, 100, 2, ['orders__orders'])")
        ledger.create(conn)
        ledger.create(conn)  # and again: nothing left to bring up to date
        assert conn.execute("select batch_id, events, already_landed from loader.batches").fetchall() == [(1, 8, 2)]
        assert ledger.next_batch_id(conn) == 2
        assert ledger.batches_after(conn, 0) == (1, {"orders__orders"})
