"""The fault suite's own CDC stack, so that restarting its Kafka, Connect or Postgres disturbs no one.

Its home is `.mirador/faults-<id>`, its Postgres, broker, controller, Connect worker and the four
services listen on free ports, and only the jars are shared with the default home. `mirador run` and
shop traffic (`mirador simulate --rate 50 --duration 0`) run through every scenario (`live`). What each
scenario measured goes to `.mirador/faults-report.json` and is printed at the end of the session.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import uuid
from collections.abc import Iterator

import httpx
import pytest

from cdc import postgres, stack
from cdc.config import SERVICES, StackSettings
from mirador.home import PROJECT_ROOT
from tests.faults.live import Live, Scratch
from tests.ports import free_port_run, free_ports
from tests.warehouse.commands import MIRADOR

REPORT = PROJECT_ROOT / ".mirador" / "faults-report.json"
RESULTS: list[dict] = []


@pytest.fixture(scope="session")
def scratch() -> Iterator[Scratch]:
    home = PROJECT_ROOT / ".mirador" / f"faults-{uuid.uuid4().hex[:8]}"
    pg, kafka, controller, *service_ports = free_ports(3 + len(SERVICES))
    connect = free_port_run(2)  # a second worker takes the next port (test_connect_cluster.py)
    ports = {"pg_port": pg, "kafka_port": kafka, "kafka_controller_port": controller, "connect_port": connect}
    jars = StackSettings().jars
    settings = StackSettings(home=home, jars_dir=jars, pg_dsn=None, kafka_bootstrap=None, connect_url=None, **ports)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIRADOR_")} | {
        "MIRADOR_HOME": str(home),
        "MIRADOR_JARS_DIR": str(jars),
        **{f"MIRADOR_{key.upper()}": str(value) for key, value in ports.items()},
        **{f"MIRADOR_{s.upper()}_PORT": str(p) for s, p in zip(SERVICES, service_ports, strict=True)},
    }
    started = Scratch(home, settings, env, {s: f"http://127.0.0.1:{p}" for s, p in zip(SERVICES, service_ports)})
    try:
        for attempt in range(3):  # idempotent; a fresh worker on a loaded machine may time a request out
            try:
                stack.up(settings)
                break
            except httpx.HTTPError:
                if attempt == 2:
                    raise
        subprocess.run([MIRADOR, "services", "up"], env=env, check=True, timeout=180, cwd=PROJECT_ROOT)
        yield started
    finally:
        subprocess.run([MIRADOR, "services", "down"], env=env, timeout=120, cwd=PROJECT_ROOT)
        stack.down(settings)
        data = postgres.data_dir(settings)
        shutil.rmtree(home, ignore_errors=True)
        if not data.is_relative_to(home):
            shutil.rmtree(data.parent, ignore_errors=True)


@pytest.fixture
def live(scratch: Scratch, request: pytest.FixtureRequest) -> Iterator[Live]:
    """`mirador run` and shop traffic on the scratch stack; stopped (by PID) whatever the test did."""
    scratch.stack_up()  # each scenario starts from a whole stack, whatever the last one left
    running = Live(scratch, request.node.name)
    try:
        yield running
    finally:
        running.close()
        if running.result:
            RESULTS.append(running.result)
            REPORT.parent.mkdir(parents=True, exist_ok=True)
            REPORT.write_text(json.dumps(RESULTS, indent=2) + "\n")


def pytest_terminal_summary(terminalreporter) -> None:
    if not RESULTS:
        return
    write = terminalreporter.write_line
    write("")
    write(f"faults: from each fault to a publication that includes every source's changes since ({REPORT})")
    write(f"{'scenario':<48} {'faults':>6} {'recovery s (median / max)':>26}  5xx seen")
    for r in RESULTS:
        seconds = r["recovery_seconds"]
        median = statistics.median(seconds) if seconds else float("nan")
        worst = max(seconds) if seconds else float("nan")
        write(f"{r['scenario']:<48} {len(seconds):>6} {median:>12.1f} / {worst:<11.1f}  {r['errors'] or '-'}")
        for seen in r.get("status_during_fault", []):
            write(f"    {seen['moment']}: {seen['command']} exit {seen['exit']}: {seen['verdict'][:100]}")
