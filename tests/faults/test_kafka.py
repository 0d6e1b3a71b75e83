"""The broker killed with kill -9, then stopped cleanly, under shop traffic; `mirador stack up` starts
it again each time. `mirador run` and the Connect worker ride the outage out."""

from __future__ import annotations

import os
import signal
import time

import pytest

from cdc import kafka

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]


def test_kill_9_and_a_clean_restart_of_kafka(live):
    live.start(seed=7)
    settings = live.scratch.settings
    os.kill(kafka.pid(settings), signal.SIGKILL)
    killed = time.monotonic()
    time.sleep(5)
    live.observe("Kafka killed")
    live.scratch.stack_up()
    live.recovered(killed)
    kafka.stop(settings)
    stopped = time.monotonic()
    live.observe("Kafka stopped")
    live.scratch.stack_up()
    live.recovered(stopped)
    live.observe("after `mirador stack up`")
    live.finish(redeliveries=True)
