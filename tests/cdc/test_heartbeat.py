"""The heartbeat keeps an idle database's slot from holding WAL that other databases write."""

from __future__ import annotations

import time

import psycopg
import pytest

from cdc import postgres

pytestmark = pytest.mark.stack

IDLE = "invoices"
BUSY = "customers"
RETAINED = """
    select pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint
    from pg_replication_slots where slot_name = %s
"""


def test_idle_database_slot_retains_little_wal(stack_settings):
    written = 48 * 2**20
    with psycopg.connect(postgres.service_dsn(stack_settings, BUSY), autocommit=True) as conn:
        conn.execute("create table if not exists mirador.wal_filler (id bigserial, pad text)")
        conn.execute("alter table mirador.wal_filler alter column pad set storage external")  # no compression
        try:
            # ~48 MiB of WAL in another database; the idle one's connector sees none of it.
            for _ in range(12):
                conn.execute(
                    "insert into mirador.wal_filler (pad) select repeat('x', 4000) from generate_series(1, 1000)"
                )
        finally:
            conn.execute("drop table mirador.wal_filler")
    with psycopg.connect(postgres.superuser_dsn(stack_settings), autocommit=True) as admin:
        deadline = time.monotonic() + 60
        retained = admin.execute(RETAINED, (f"mirador_{IDLE}",)).fetchone()[0]
        print(f"retained right after the writes: {retained / 2**20:.1f} MiB")
        while retained > written / 4 and time.monotonic() < deadline:
            time.sleep(1)
            retained = admin.execute(RETAINED, (f"mirador_{IDLE}",)).fetchone()[0]
    assert retained < written / 4, f"idle slot still retains {retained / 2**20:.1f} MiB"
