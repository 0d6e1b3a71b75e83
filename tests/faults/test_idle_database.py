"""One service database idle for a long stretch while others write much: its slot retains little WAL
(Debezium's heartbeat moves it on) and its watermark in each publication keeps advancing."""

from __future__ import annotations

import time

import psycopg
import pytest

from cdc import postgres
from warehouse.publish import current_publication

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]

IDLE, BUSY = "invoices", ("customers", "orders")
STRETCH = 90
RETAINED = """
    select pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint
    from pg_replication_slots where slot_name = %s
"""


def test_an_idle_database_keeps_its_slot_small_and_its_watermark_moving(live):
    settings = live.scratch.settings
    live.start_run()
    live.caught_up(time.monotonic())
    written, retained, marks = 0, [], []
    started = time.monotonic()
    with psycopg.connect(postgres.superuser_dsn(settings), autocommit=True) as admin:
        while time.monotonic() - started < STRETCH:
            for service in BUSY:  # ~8 MiB of WAL a round in the busy databases; none in the idle one
                with psycopg.connect(postgres.service_dsn(settings, service), autocommit=True) as conn:
                    conn.execute("create table if not exists mirador.wal_filler (id bigserial, pad text)")
                    conn.execute("alter table mirador.wal_filler alter column pad set storage external")
                    conn.execute(
                        "insert into mirador.wal_filler (pad) select repeat('x', 4000) from generate_series(1, 1000)"
                    )
                    conn.execute("truncate mirador.wal_filler")
                    written += 4000 * 1000
            retained.append(admin.execute(RETAINED, (f"mirador_{IDLE}",)).fetchone()[0])
            publication = current_publication(live.scratch.published)
            marks.append((publication.watermark.get(IDLE, {}).get("lsn") or 0) if publication else 0)
            time.sleep(1)
        for service in BUSY:
            with psycopg.connect(postgres.service_dsn(settings, service), autocommit=True) as conn:
                conn.execute("drop table mirador.wal_filler")
    print(
        f"wrote {written / 2**20:.0f} MiB of WAL elsewhere; idle slot retained at most {max(retained) / 2**20:.1f} MiB"
    )
    assert written > 200 * 2**20, "the busy databases wrote too little WAL to tell"
    # Bounded: a slot nothing moved on would retain all that was written since the start; this one grows
    # until Debezium confirms an LSN for the idle database (its heartbeats, which its walsender reaches
    # only after decoding the others' WAL: tens of seconds at this rate), then falls back.
    falls = sum(1 for before, now in zip(retained, retained[1:]) if now < before / 2)
    assert falls >= 1, [r // 2**20 for r in retained]
    with psycopg.connect(postgres.superuser_dsn(settings), autocommit=True) as admin:
        deadline = time.monotonic() + 60
        while (after := admin.execute(RETAINED, (f"mirador_{IDLE}",)).fetchone()[0]) > 16 * 2**20:
            assert time.monotonic() < deadline, f"the idle slot still retains {after / 2**20:.1f} MiB"
            time.sleep(1)
    assert len(set(marks)) >= 5 and marks == sorted(marks), "the idle service's watermark did not keep advancing"
    check = live.scratch.mirador("verify", "--timeout", "300", timeout=600)
    assert check.returncode == 0 and "differences" not in check.stdout, check.stdout + check.stderr
    live.result = {
        "scenario": live.scenario,
        "recovery_seconds": [],
        "errors": {},
        "wal_written_mib": round(written / 2**20),
        "idle_slot_retained_max_mib": round(max(retained) / 2**20, 1),
        "idle_slot_retained_after_mib": round(after / 2**20, 1),
        "idle_watermark_advances": len(set(marks)) - 1,
        "idle_slot_fell_back": falls,
    }
