"""The pipeline's session: one DuckDB instance written from several threads, handed over on request."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest

from warehouse.exceptions import TransientError
from warehouse.lock import others_waiting
from warehouse.runtime.configuration import PipelineSettings
from warehouse.runtime.session import Session

CHILD = textwrap.dedent("""
    import sys, duckdb
    from pathlib import Path
    from warehouse.lock import WarehouseLock
    path = Path(sys.argv[1])
    with WarehouseLock(path, "analyst (test)", timeout=30), duckdb.connect(str(path)) as conn:
        conn.execute("insert into t0 values (-1)")
""")


def test_threads_write_one_instance_and_a_waiting_process_gets_its_turn(tmp_path):
    settings = PipelineSettings(home=tmp_path, warehouse_path=tmp_path / "warehouse.duckdb")
    with Session(settings) as session:

        def write(n: int) -> None:
            with session.connection() as conn:
                conn.execute(f"create table t{n} (i integer)")
                for start in range(0, 20_000, 1_000):
                    conn.execute(f"insert into t{n} select range from range({start}, {start + 1_000})")

        writers = [threading.Thread(target=write, args=(n,)) for n in range(2)]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        assert session.hand_over() is None  # nobody waits: nothing to do

        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(settings.warehouse)], cwd=tmp_path, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 30
        while not others_waiting(settings.warehouse.resolve()) and child.poll() is None:
            assert time.monotonic() < deadline, "the child never waited for the file"
            time.sleep(0.02)
        assert "analyst (test)" in others_waiting(settings.warehouse.resolve())[0]
        took = session.hand_over()
        assert took is not None
        assert child.wait(timeout=30) == 0, child.stderr.read()
        assert not others_waiting(settings.warehouse.resolve())

        with session.connection() as conn:  # the session has the file back, with the child's write
            assert conn.execute("select count(*), min(i) from t0").fetchall() == [(20_001, -1)]
            assert conn.execute("select count(*) from t1").fetchall() == [(20_000,)]


def test_a_session_that_cannot_take_the_file_back_lets_its_users_go(tmp_path):
    settings = PipelineSettings(home=tmp_path, warehouse_path=tmp_path / "warehouse.duckdb", loader_lock_timeout=1)
    path = settings.warehouse.resolve()
    with Session(settings) as session:
        # An analyst who keeps the file longer than the pipeline is willing to wait.
        child = subprocess.Popen([sys.executable, "-c", KEEPER, str(path)], stderr=subprocess.PIPE, text=True)
        while not others_waiting(path):
            assert child.poll() is None, child.stderr.read()
            time.sleep(0.02)
        failures: list[BaseException] = []

        def use() -> None:
            time.sleep(0.3)  # arrives while the file is away
            try:
                with session.connection():
                    pass
            except TransientError as err:
                failures.append(err)

        user = threading.Thread(target=use)
        user.start()
        with pytest.raises(TransientError):
            session.hand_over()
        user.join(timeout=10)
        assert not user.is_alive() and failures
        child.kill()
        child.wait()


KEEPER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from warehouse.lock import WarehouseLock
    with WarehouseLock(Path(sys.argv[1]), "analyst (test)", timeout=30):
        time.sleep(30)
""")
