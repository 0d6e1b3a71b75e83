"""kill -9 of `mirador run` at random moments of its cycle, 20 times, under shop traffic.

Each kill falls, by a seeded draw, while a held batch lands (just after a cycle ends), while a build
runs (just after a batch landed), or while a publication is written (its `.partial` file exists). A
new `mirador run` is started at once, as a supervisor would. Every other kill, the time from the kill to
a publication that includes everything committed meanwhile is recorded; the kill after it falls in the
new run's catch-up. The loader lands exactly once, so raw gains no redelivery.
"""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest

pytestmark = [pytest.mark.faults, pytest.mark.timeout(1500)]

KILLS = 20
LANDED, CYCLE = "landed batch=", "warehouse.runtime.pipeline build"


def _wait(condition, live, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        assert live.run.poll() is None, f"`mirador run` exited:\n{live.tail()}"
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_kill_9_of_mirador_run_at_random_moments(live):
    rng = random.Random(20261203)
    published = live.scratch.published
    live.start(seed=3)
    moments: Counter = Counter()
    for kill in range(KILLS):
        log = live.run_log
        moment = rng.choice(["landing", "build", "publication"])
        if moment == "publication":
            hit = _wait(lambda: any(published.glob("*.partial")), live, 120)
        else:
            marker = CYCLE if moment == "landing" else LANDED
            seen = log.read_text().count(marker)
            hit = _wait(lambda log=log, m=marker, n=seen: log.read_text().count(m) > n, live, 120)
            time.sleep(rng.uniform(0, 0.15) if moment == "landing" else rng.uniform(0.1, 1.5))
        assert hit, f"no {moment} within 120 s:\n{live.tail()}"
        moments[moment if moment != "publication" or any(published.glob("*.partial")) else "after publication"] += 1
        live.kill_run()
        killed = time.monotonic()
        live.start_run()
        if kill % 2 == 0:  # else the next kill falls in the new run's catch-up, before it has recovered
            live.recovered(killed)
    live.finish(kills=dict(moments))
    assert sum(moments.values()) == KILLS and moments["publication"] >= 3, moments
