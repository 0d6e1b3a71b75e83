"""Crash a Kafka Connect worker as a lost machine would (SIGKILL), and watch its tasks move.

For the cluster test and the fault suite: `kill_holder(settings, connector)` kills the native worker
running that connector's task (`kill(settings, worker_id)` any one of them, by the id Connect gives it);
`wait_moved` polls the group's REST API until the task runs on another worker.
"""

from __future__ import annotations

import os
import signal
import time

from cdc import connect
from cdc.config import StackSettings
from mirador.processes import alive


def holder(settings: StackSettings, connector: str) -> str | None:
    """The worker id running the connector's first task, if one is."""
    tasks = connect.status(settings, connector)["tasks"]
    return tasks[0]["worker_id"] if tasks and tasks[0]["state"] == "RUNNING" else None


def kill(settings: StackSettings, worker_id: str) -> int:
    """SIGKILL the native worker `worker_id` (`127.0.0.1:<port>`); its PID, once it is gone."""
    pids = connect.worker_pids(settings)
    assert worker_id in pids, f"{worker_id} is not a live worker of ours ({sorted(pids)})"
    pid = pids[worker_id]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while alive(pid):
        assert time.monotonic() < deadline, f"worker {worker_id} (pid {pid}) outlived SIGKILL by 30s"
        time.sleep(0.05)
    return pid


def kill_holder(settings: StackSettings, connector: str) -> str:
    """SIGKILL the native worker running `connector`'s task; its worker id."""
    worker_id = holder(settings, connector)
    assert worker_id, f"no worker runs {connector}'s task"
    kill(settings, worker_id)
    return worker_id


def wait_moved(settings: StackSettings, connector: str, away_from: str, timeout: float = 120) -> str:
    """Until `connector`'s task is RUNNING on a worker other than `away_from`; that worker's id."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            state = connect.status(settings, connector)
        except Exception as err:  # noqa: BLE001 - the group rebalancing; ask again
            seen.append(type(err).__name__)
        else:
            tasks = state["tasks"]
            seen.append(",".join(f"{t['state']}@{t.get('worker_id')}" for t in tasks) or "no task")
            if tasks and tasks[0]["state"] == "RUNNING" and tasks[0]["worker_id"] != away_from:
                return tasks[0]["worker_id"]
        time.sleep(0.25)
    raise AssertionError(f"{connector}'s task did not leave {away_from} within {timeout:.0f}s: {seen[-5:]}")
