"""The warehouse file held by another process for longer than MIRADOR_LOADER_LOCK_TIMEOUT: `mirador
run` hands it over between cycles, then cannot take it back in time and stops with one clear
transient error (exit 3); run again, as a supervisor would, it catches up and nothing is lost."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from mirador.home import PROJECT_ROOT

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]

LOCK_TIMEOUT = 10
HOLD = """
import sys, time
from pathlib import Path
from warehouse.lock import WarehouseLock
with WarehouseLock(Path(sys.argv[1]), "a backup copying the file", timeout=900):
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_the_warehouse_held_past_the_lock_timeout(live):
    scratch = live.scratch
    scratch.env["MIRADOR_LOADER_LOCK_TIMEOUT"] = str(LOCK_TIMEOUT)
    try:
        live.start(seed=13)
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(scratch.home / "warehouse" / "mirador.duckdb"), str(LOCK_TIMEOUT * 3)],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout.readline().strip() == "holding"
            held = time.monotonic()
            live.observe("warehouse held by another process")
            code = live.run.wait(timeout=LOCK_TIMEOUT * 3 + 120)
            last = live.tail().strip().splitlines()[-1]
            assert code == 3, live.tail()
            assert last.startswith("error: ") and "still held by a backup copying the file" in last, last
        finally:
            holder.wait(timeout=LOCK_TIMEOUT * 3 + 60)
        live.start_run()
        live.recovered(held)
        live.finish(lock_timeout_seconds=LOCK_TIMEOUT, exit_line=last)
    finally:
        scratch.env.pop("MIRADOR_LOADER_LOCK_TIMEOUT")
