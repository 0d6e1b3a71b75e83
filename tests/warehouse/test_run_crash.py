"""kill -9 `mirador run` under traffic, again and again: readers keep a whole publication, nothing is lost.

Shop traffic flows through the services while `mirador run` is killed mid-cycle several times: half
the kills while a publication is being written (its `.partial` file exists), the others at a random
moment of a cycle (landing, replaying, publishing). After every kill the current publication is one
readers can open, whole, as its pointer describes it. A second `mirador run` beside a running one is
refused. Finally a last run catches up and `mirador verify` finds every view equal to the services'
databases.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time

import duckdb
import pytest

from mirador.home import PROJECT_ROOT
from tests.warehouse.commands import MIRADOR, verify
from warehouse.publish import current_publication

pytestmark = pytest.mark.stack

KILLS = 6
CYCLE = "warehouse.runtime.pipeline build"


def _start(env: dict, log) -> subprocess.Popen:
    with log.open("w") as out:  # a file: a pipe nobody reads meanwhile would fill and block the run
        return subprocess.Popen([MIRADOR, "run"], env=env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT)


def _wait_for(condition, run: subprocess.Popen, log, timeout: float, what: str) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        assert run.poll() is None, f"`mirador run` exited before {what}:\n{log.read_text()[-3000:]}"
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _whole(published) -> str | None:
    """The current publication opens read-only and holds what its pointer says; its build id."""
    pointer = current_publication(published)
    if pointer is None:
        return None
    with duckdb.connect(str(pointer.path(published)), read_only=True) as conn:
        tables = {name for (name,) in conn.execute("select table_name from duckdb_tables()").fetchall()}
        assert set(pointer.tables) | {"_publication"} <= tables, (pointer, tables)
        build_id, through = conn.execute("select build_id, through_batch from _publication").fetchone()
        for table in pointer.tables:
            conn.execute(f'select count(*) from "{table}"').fetchall()
    assert (build_id, through) == (pointer.build_id, pointer.through_batch)
    return build_id


def test_kill_9_mid_cycle_keeps_readers_whole_and_loses_nothing(pipeline_env):
    env, _, home = pipeline_env
    published = home / "warehouse" / "published"
    pick = random.Random(9)
    # Traffic for as long as the kills take; stopped then (the views are checked against Postgres, not
    # against what the simulator sent).
    simulate = subprocess.Popen(
        [MIRADOR, "simulate", "--rate", "40", "--duration", "600", "--seed", "9"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    builds, mid_publication = set(), 0
    try:
        for kill in range(KILLS):
            log = home / f"run-{kill}.log"
            run = _start(env, log)
            try:
                cycled = _wait_for(lambda log=log: CYCLE in log.read_text(), run, log, 180, "its first cycle")
                assert cycled, log.read_text()[-3000:]
                if kill == 1:  # one pipeline per warehouse: a second one is refused, and says why
                    second = subprocess.run(
                        [MIRADOR, "run"], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
                    )
                    assert second.returncode == 3, second.stdout + second.stderr
                    assert "already running" in second.stderr
                if kill % 2 == 0:
                    mid_publication += _wait_for(
                        lambda: any(published.glob("*.partial")), run, log, 30, "a publication"
                    )
                else:
                    time.sleep(pick.uniform(0, 1.5))
            finally:
                run.kill()  # SIGKILL: no handler, no cleanup
                run.wait(timeout=60)
            assert run.returncode == -signal.SIGKILL
            builds.add(_whole(published))
        assert mid_publication >= KILLS // 2 - 1, "too few kills landed while a publication was written"
        assert len(builds - {None}) >= KILLS // 2, "the runs between the kills should have published"
    finally:
        simulate.kill()
        simulate.wait()

    log = home / "run-last.log"
    run = _start(env, log)
    try:
        # It holds the warehouse before `verify` starts, which then waits for it rather than building.
        assert _wait_for(lambda: CYCLE in log.read_text(), run, log, 180, "its first cycle"), log.read_text()[-3000:]
        verify(env)
        assert _whole(published) is not None
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=180)
    assert run.returncode == 0, log.read_text()[-3000:]
    # Files the killed publications left are gone; what remains is the current one and those kept.
    assert not list(published.glob("*.partial*"))
    assert len(list(published.glob("*.duckdb"))) <= 1 + 3
