"""kill -9 of the Connect worker running a connector's task, in a group of two: its tasks move to the
other worker within the session timeout, nothing is lost; `mirador stack up` brings the lost one back."""

from __future__ import annotations

import time

import pytest

from cdc import connect

pytestmark = [
    pytest.mark.faults,
    pytest.mark.timeout(900),
    pytest.mark.skipif(not hasattr(connect, "worker_pids"), reason="needs the Connect worker group (cdc/connect.py)"),
]

CONNECTOR = "mirador-orders"


def test_kill_9_of_a_worker_in_a_group_of_two(live):
    workers = pytest.importorskip("tests.cdc.workers", reason="needs the worker helpers of the cluster test")
    scratch = live.scratch
    scratch.env["MIRADOR_CONNECT_WORKERS"] = "2"
    two = scratch.settings.model_copy(update={"connect_workers": 2})
    try:
        scratch.stack_up()  # starts the second worker on the next port
        live.start(seed=17)
        lost = workers.kill_holder(two, CONNECTOR)
        killed = time.monotonic()
        live.observe(f"worker {lost} killed")
        moved_to = workers.wait_moved(two, CONNECTOR, away_from=lost)
        moved = time.monotonic() - killed
        live.recovered(killed)
        scratch.stack_up()
        live.observe("after `mirador stack up`")
        live.finish(redeliveries=True, task_moved_seconds=round(moved, 1), moved_to=moved_to)
    finally:
        scratch.env.pop("MIRADOR_CONNECT_WORKERS")
        # Back to one worker. `stack up` stops the second and registers at once; while the group has not
        # noticed yet, the first may forward the registration to the stopped one ("IO Error trying to
        # forward REST request"): asked again after the session timeout, it answers.
        try:
            scratch.stack_up()
        except AssertionError:
            time.sleep(10)
            scratch.stack_up()
