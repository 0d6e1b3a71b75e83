"""The scheduling recipes in docs/operations/ hold: systemd accepts the units, the crontab's commands
parse, and Airflow and Dagster load the DAG and the job and, run for real, fail on a broken status.

Airflow and Dagster would not fit `.venv`'s dbt constraints: each is installed once, pinned, into a
virtualenv of its own under MIRADOR_RECIPES_VENVS (default ~/.cache/mirador/recipes), kept for later
runs. The runs point `mirador status` at ports nobody listens on, so its verdict is broken (exit 6)
without the stack.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mirador.home import PROJECT_ROOT
from tests.ports import free_ports
from tests.warehouse.commands import MIRADOR

RECIPES = PROJECT_ROOT / "docs" / "operations"
PINNED = {"airflow": "apache-airflow==3.3.2", "dagster": "dagster==1.13.28"}
VENVS = Path(os.environ.get("MIRADOR_RECIPES_VENVS", Path.home() / ".cache" / "mirador" / "recipes"))


def _venv(name: str) -> Path:
    """The virtualenv holding `PINNED[name]`, installed on first use (a lock keeps two sessions apart)."""
    home = VENVS / PINNED[name].replace("==", "-")
    python = home / "bin" / "python"
    VENVS.mkdir(parents=True, exist_ok=True)
    with (VENVS / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / ".installed").exists():
            shutil.rmtree(home, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(home)], check=True, timeout=120)
            subprocess.run(
                [python, "-m", "pip", "install", "--quiet", PINNED[name]], check=True, timeout=900, capture_output=True
            )
            (home / ".installed").touch()
    return python


@pytest.fixture(scope="module")
def orchestrators() -> dict[str, Path]:
    with ThreadPoolExecutor(2) as pool:
        return dict(zip(PINNED, pool.map(_venv, PINNED), strict=True))


@pytest.fixture
def down_env(tmp_path: Path) -> dict[str, str]:
    """`mirador status` against servers that are not there: broken, whatever the stack does."""
    pg, connect, kafka = free_ports(3)
    (tmp_path / "airflow").mkdir()
    (tmp_path / "dagster").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MIRADOR_PG_DSN", "AIRFLOW_HOME", "DAGSTER_HOME")}
    return env | {
        "MIRADOR_BIN": str(MIRADOR),
        "MIRADOR_HOME": str(tmp_path / "home"),
        "MIRADOR_PG_PORT": str(pg),
        "MIRADOR_CONNECT_URL": f"http://127.0.0.1:{connect}",
        "MIRADOR_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka}",
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }


def test_systemd_accepts_the_units(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze missing: `apt-get install -y systemd`")
    units = sorted(p for p in RECIPES.iterdir() if p.suffix in (".service", ".timer"))
    assert {p.name for p in units} >= {"mirador-run.service", "mirador-refresh.timer", "mirador-status.service"}
    for unit in units:  # the paths of this checkout, so that systemd finds the executables
        text = unit.read_text().replace("/opt/mirador/.venv/bin/mirador", str(MIRADOR))
        (tmp_path / unit.name).write_text(text.replace("/opt/mirador", str(PROJECT_ROOT)))
    checked = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(tmp_path / p.name) for p in units)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # verify exits 0 on unknown keys and bad values too: it only prints them
    assert checked.returncode == 0 and checked.stdout + checked.stderr == "", checked.stdout + checked.stderr


def test_the_crontab_commands_parse():
    jobs = [
        line.split(None, 5)[5]
        for line in (RECIPES / "crontab").read_text().splitlines()
        if line.strip() and not line.startswith("#") and "=" not in line.split()[0]
    ]
    assert len(jobs) == 2 and "load --once" in jobs[0] and "status" in jobs[1]
    for job in jobs:
        checked = subprocess.run(["sh", "-n", "-c", job], capture_output=True, text=True, timeout=10)
        assert checked.returncode == 0, checked.stderr


AIRFLOW = """
from airflow.dag_processing.dagbag import DagBag
from airflow.exceptions import AirflowException
bag = DagBag(dag_folder={path!r})
assert not bag.import_errors, bag.import_errors
dag = bag.dags["mirador_refresh"]
assert {{t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}} == {{
    "load": ["build"], "build": ["status"], "status": []}}, dag.tasks
assert dag.max_active_runs == 1
try:
    dag.get_task("status").execute(context={{}})
except AirflowException as err:
    print("FAILED:", err)
"""


def test_airflow_loads_the_dag_and_its_status_task_fails_when_broken(orchestrators, down_env):
    done = subprocess.run(
        [orchestrators["airflow"], "-c", AIRFLOW.format(path=str(RECIPES / "airflow_dag.py"))],
        env=down_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "FAILED: Bash command failed. The command returned a non-zero exit code 6." in done.stdout, done.stdout
    assert "mirador status: BROKEN - Postgres at" in done.stdout + done.stderr


DAGSTER = """
import importlib.util
spec = importlib.util.spec_from_file_location("dagster_job", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
refresh = module.defs.resolve_job_def("mirador_refresh")
upstream = refresh.graph.dependency_structure.all_upstream_outputs_from_node
assert {{n.name: [u.node_name for u in upstream(n.name)] for n in refresh.graph.nodes}} == {{
    "load": [], "build": ["load"], "status": ["build"]}}
assert {{s.job_name for s in module.defs.schedules}} == {{"mirador_refresh", "mirador_status"}}
result = module.defs.resolve_job_def("mirador_status").execute_in_process(raise_on_error=False)
assert not result.success
failure = result.failure_data_for_node("status")
print("FAILED:", failure.error.message)
"""


def test_dagster_loads_the_jobs_and_the_status_job_fails_when_broken(orchestrators, down_env):
    validated = subprocess.run(
        [Path(orchestrators["dagster"]).parent / "dagster", "definitions", "validate", "-f", "dagster_job.py"],
        cwd=RECIPES,
        env=down_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert validated.returncode == 0, validated.stdout[-3000:] + validated.stderr[-3000:]
    done = subprocess.run(
        [orchestrators["dagster"], "-c", DAGSTER.format(path=str(RECIPES / "dagster_job.py"))],
        env=down_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    failed = next((line for line in done.stdout.splitlines() if line.startswith("FAILED:")), "")
    assert "mirador is broken: Postgres at" in failed, done.stdout[-3000:]
