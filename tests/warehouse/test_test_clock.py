"""When `mirador run` runs its data tests: at the first cycle that built something, a confirming run at the
next cycle after a dbt run that recorded their SQL, then every interval."""

from __future__ import annotations

from warehouse.build.builder import BuildResult
from warehouse.runtime.pipeline import DataTestClock


def _ran(*, replayed: bool = False, skipped: bool = False) -> BuildResult:
    return BuildResult("b", 1, replayed=replayed, skipped=skipped)


def test_tests_are_due_at_the_first_cycle_and_confirmed_at_the_next():
    clock = DataTestClock(30, now=100)
    assert clock.due(100)
    clock.ran(_ran(), 101)  # dbt test: recorded
    assert clock.due(102)  # confirmed at once, not an interval later
    clock.ran(_ran(), 103)  # dbt test again: confirmed
    assert not clock.due(104) and not clock.due(132.9)
    assert clock.due(133)
    clock.ran(_ran(replayed=True), 133)
    assert not clock.due(134) and clock.due(163)


def test_dbt_rendering_other_sql_runs_the_tests_at_the_interval():
    clock = DataTestClock(30, now=0)
    clock.ran(_ran(), 1)
    clock.ran(_ran(), 2)  # the confirming run recorded other SQL: no third run in a row
    assert not clock.due(3)
    clock.ran(_ran(), 32)  # at the interval, dbt again: this one is confirmed at the next cycle
    assert clock.due(33)


def test_nothing_to_test_keeps_the_tests_due():
    clock = DataTestClock(30, now=0)
    clock.ran(_ran(skipped=True), 1)  # only heartbeats landed: nothing to test yet
    assert clock.due(2)
    clock.ran(_ran(replayed=True), 40)
    clock.ran(_ran(skipped=True), 71)
    assert clock.due(72)
