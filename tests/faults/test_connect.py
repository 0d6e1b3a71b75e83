"""kill -9 of the Connect worker under shop traffic: `mirador stack up` starts it again, Debezium
resumes from its stored offsets (re-sending what it had not flushed), staging collapses the repeats."""

from __future__ import annotations

import os
import signal
import time

import pytest

from cdc import connect

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]


def _worker_pids(settings) -> list[int]:
    if hasattr(connect, "worker_pids"):  # a group of native workers
        return list(connect.worker_pids(settings).values())
    return [pid] if (pid := connect.pid(settings)) else []


def test_kill_9_of_the_connect_worker(live):
    live.start(seed=5)
    (pid,) = _worker_pids(live.scratch.settings)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    time.sleep(3)
    live.observe("Connect worker killed")
    # With the changes stuck upstream, verify says so in one line and exit 3 (it waits 5 s for them).
    stuck = live.scratch.mirador("verify", "--timeout", "5", timeout=300)
    assert stuck.returncode == 3, stuck.stdout + stuck.stderr
    assert stuck.stderr.strip().splitlines()[-1].startswith("error: the published view tables have not caught up")
    live.scratch.stack_up()
    live.recovered(killed)
    live.observe("after `mirador stack up`")
    live.finish(redeliveries=True)
