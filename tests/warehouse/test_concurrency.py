"""Readers, `mirador run` and an analyst's `dbt build` at the same time: no errors, no torn reads.

A simulated orders service lands batches into the raw changelog under the warehouse lock, as the
loader does; the real `mirador run` builds and publishes them; two reader processes hammer the
publications; an analyst runs `dbt build` from the dbt project. Every state a reader sees must be
the source's state after some whole batch.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time

import duckdb
import pytest

from mirador.home import PROJECT_ROOT
from tests.dbt_project.changelog import Changelog
from tests.warehouse.commands import BIN, MIRADOR
from warehouse.lock import WarehouseLock
from warehouse.publish import current_publication

pytestmark = pytest.mark.stack


def _state(source: Changelog) -> tuple[int, str]:
    total = sum(
        (line["quantity"] * line["unit_price"] for key, line in source.lines.items() if key[0] in source.orders),
        start=0,
    )
    return len(source.orders), f"{total:.2f}"


def test_readers_run_and_analyst_together(tmp_path, simulated_home):
    warehouse, published, env = simulated_home
    source = Changelog(random.Random(7))
    states = {(0, "0.00")}

    stop = tmp_path / "stop"
    run = subprocess.Popen(
        [MIRADOR, "run"], env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    readers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.warehouse.readers",
                str(published),
                str(stop),
                str(tmp_path / f"reader{i}.json"),
            ],
            cwd=PROJECT_ROOT,
            env=env,
        )
        for i in range(2)
    ]
    analyst, publications, batches = None, set(), 0
    try:
        # Until the readers have watched several publications replace each other, the analyst's build
        # has come and gone, and the simulated service has landed a good number of batches.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not (
            len(publications) >= 4 and batches >= 10 and analyst is not None and analyst.poll() is not None
        ):
            for _ in range(random.Random(batches).randrange(5, 30)):
                source.step()
            with WarehouseLock(warehouse, "simulated loader"), duckdb.connect(str(warehouse)) as conn:
                source.flush(conn)
            states.add(_state(source))
            batches += 1
            if batches == 5:
                analyst = subprocess.Popen(
                    [
                        BIN / "dbt",
                        "build",
                        "--profiles-dir",
                        ".",
                        "--target-path",
                        str(tmp_path / "target"),
                        "--log-path",
                        str(tmp_path / "logs"),
                    ],
                    cwd=PROJECT_ROOT / "dbt_project",
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            if (pointer := current_publication(published)) is not None:
                publications.add(pointer.build_id)
            time.sleep(0.3)
        stop.touch()
        for reader in readers:
            assert reader.wait(timeout=60) == 0
    finally:
        stop.touch()
        run.send_signal(signal.SIGTERM)
        output = run.communicate(timeout=120)[0]
    assert run.returncode == 0, output
    assert analyst is not None
    analyst_out, analyst_err = analyst.communicate(timeout=300)
    assert analyst.returncode == 0, analyst_out + analyst_err
    assert "Completed successfully" in analyst_out
    # One waited for the other, and said so.
    assert "waiting for dbt" in output or "mirador: waiting for" in analyst_err

    seen_builds = set()
    for i in range(2):
        result = json.loads((tmp_path / f"reader{i}.json").read_text())
        assert result["errors"] == []
        assert result["reads"] > 20
        for build_id, count, total in result["observed"]:
            seen_builds.add(build_id)
            # A consistent publication is the source's state after some whole batch.
            assert (count, total) in states, (build_id, count, total)
    assert len(seen_builds) >= 3, "readers should have seen several publications come and go"
