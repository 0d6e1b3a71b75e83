"""Postgres restarted (fast shutdown) and crashed (immediate shutdown) while the services write: they
answer 503 problems meanwhile, never a 500; Debezium reconnects to its slot and nothing is lost."""

from __future__ import annotations

import time

import pytest

from cdc import postgres

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]


def test_a_restart_and_a_crash_of_postgres(live):
    live.start(seed=11)
    settings = live.scratch.settings
    data = postgres.data_dir(settings)
    # -l: the server's output goes to its log, not to a pipe this test would wait on for ever
    log = data.parent / "postgres.log"
    postgres._run_pg(settings, "pg_ctl", "restart", "-D", data, "-l", log, "-m", "fast", "-w", "-t", "120")
    restarted = time.monotonic()
    live.observe("Postgres restarted (fast)")
    live.scratch.stack_up()  # re-starts what the restart left failed, if anything
    live.recovered(restarted)
    postgres._run_pg(settings, "pg_ctl", "stop", "-D", data, "-m", "immediate", "-w", "-t", "120")
    crashed = time.monotonic()
    time.sleep(5)
    live.observe("Postgres crashed (immediate)")
    live.scratch.stack_up()
    live.recovered(crashed)
    live.finish(redeliveries=True, database_down=True)
