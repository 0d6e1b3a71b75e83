"""`mirador status` on the real stack: fresh while `mirador run` keeps up, stale (with where it is stuck)
once it stops while the services keep writing, fresh again after a scheduler's `load --once` and
`build`; broken in one line, without waiting, when a server is down or a connector paused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid

import httpx
import pytest

from mirador.home import PROJECT_ROOT
from tests.ports import free_ports
from tests.warehouse.commands import MIRADOR
from warehouse.publish import current_publication

pytestmark = pytest.mark.stack

TOKEN = {"Authorization": "Bearer mirador-dev"}
FRESH, STALE, BROKEN = 0, 5, 6
NAMED = {"kafka": "Kafka at 127.0.0.1:", "connect": "Kafka Connect at http://127.0.0.1:", "postgres": "Postgres at "}


def status(env: dict, **settings: str) -> tuple[int, dict | str, str]:
    """`mirador status --json` (or the screen, with `screen=1`): exit code, report, stderr."""
    screen = settings.pop("screen", None)
    done = subprocess.run(
        [MIRADOR, "status", *([] if screen else ["--json"])],
        env=env | settings,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout if screen else json.loads(done.stdout), done.stderr


def add_customer(urls: dict) -> None:
    tag = uuid.uuid4().hex[:8]
    response = httpx.post(
        f"{urls['customers']}/customers",
        json={"email": f"status-{tag}@example.com", "name": "Grace Hopper", "country": "US"},
        headers={**TOKEN, "Idempotency-Key": str(uuid.uuid4())},
        timeout=30,
    )
    assert response.status_code in (200, 201), response.text


@pytest.mark.timeout(1500)  # a fresh home loads the shared topics' whole history first: minutes on a busy machine
def test_fresh_while_running_then_stale_with_the_reason_once_it_stops(pipeline_env):
    env, urls, home = pipeline_env
    env = env | {"MIRADOR_LOADER_GROUP": f"mirador-loader-status-{uuid.uuid4().hex[:8]}"}
    add_customer(urls)
    with (home / "run.log").open("w") as out:
        run = subprocess.Popen([MIRADOR, "run"], env=env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline, code, report = time.monotonic() + 900, None, {}
        while code != FRESH:
            assert run.poll() is None, (home / "run.log").read_text()[-3000:]
            assert time.monotonic() < deadline, f"never fresh: {report.get('reason')}"
            time.sleep(2)
            code, report, _ = status(env)
        assert report["verdict"] == "fresh" and report["reason"] is None and report["problems"] == []
        assert set(report["services"]) == {"customers", "orders", "invoices", "inventory"}
        for service, state in report["services"].items():
            assert state["slot"]["active"] and state["slot"]["retained_bytes"] >= 0, service
            assert state["connector"]["state"] == "RUNNING" and set(state["connector"]["tasks"]) == {"RUNNING"}
            assert state["connector"]["committed_commit_ts"] and state["connector"]["resnapshot"] is None, service
            assert state["lag"]["topics"] > 0 and state["lag"]["seconds"] < 30, service
            assert state["watermark"]["commit_ts"] and state["watermark"]["age_seconds"] < 60, service
        assert report["source"]["lsn"] and report["pipeline"]["running"] and report["pipeline"]["pid"] == run.pid
        pipeline = report["pipeline"]["status"]
        assert {"load", "build", "publish", "tests", "dead_letters", "written_at"} <= set(pipeline)
        assert pipeline["build"]["success"] and pipeline["tests"]["success"]
        assert pipeline["publish"]["through_batch"] <= pipeline["load"]["batch"]
        assert report["dead_letters"] == {} and isinstance(report["unmapped_columns"], dict)
        published = current_publication(home / "warehouse" / "published")
        assert report["publication"]["file"] == published.file and "error" not in report["publication"]
        assert report["publication"]["tested_through_batch"] is not None
        assert "customers.public.customers" in report["topics"]
        code, screen, stderr = status(env, screen="1")
        assert code == FRESH and screen.startswith("mirador status: FRESH\n"), screen + stderr
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=120)

    small = {"MIRADOR_STATUS_MAX_LAG_SECONDS": "3", "MIRADOR_STATUS_MAX_PUBLICATION_AGE": "8"}
    deadline = time.monotonic() + 90
    while True:
        add_customer(urls)
        code, report, _ = status(env, **small)
        if code != FRESH:
            break
        assert time.monotonic() < deadline, "still fresh long after `mirador run` stopped"
        time.sleep(1)
    assert code == STALE, report["reason"]
    assert not report["pipeline"]["running"]
    assert report["reason"].endswith("`mirador run` is not running")
    assert "loader behind on" in report["reason"] or "publication was last refreshed" in report["reason"]
    assert report["services"]["customers"]["lag"]["messages"] > 0
    code, screen, _ = status(env, screen="1", **small)
    headline = screen.splitlines()[0]  # its figures (and which topic waits longest) move on between the calls
    assert code == STALE and headline.startswith("mirador status: STALE - "), screen
    assert headline.endswith("`mirador run` is not running"), screen
    stale_batch = report["pipeline"]["status"]["load"]["batch"]

    # A scheduler's refresh instead of `mirador run`: fresh again, the status file written by its commands.
    for command in (["load", "--once", "--no-progress"], ["build"]):
        done = subprocess.run(
            [MIRADOR, *command], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
    # thresholds above the "schedule", as docs/operations.md says: the build alone may take a minute here
    relaxed = {f"MIRADOR_STATUS_MAX_{what}": "600" for what in ("LAG_SECONDS", "WATERMARK_AGE", "PUBLICATION_AGE")}
    code, report, _ = status(env, **relaxed)
    assert code == FRESH, report["reason"]
    pipeline = report["pipeline"]["status"]
    assert pipeline["written_by"]["command"] == "mirador build" and pipeline["load"]["batch"] > stale_batch
    assert isinstance(pipeline["dead_letters"], dict) and isinstance(pipeline["unmapped_columns"], dict)
    assert pipeline["publish"]["through_batch"] == pipeline["load"]["batch"] == pipeline["tests"]["through_batch"]


@pytest.mark.parametrize(
    ("component", "setting", "value"),
    [
        ("kafka", "MIRADOR_KAFKA_BOOTSTRAP", "127.0.0.1:{port}"),
        ("connect", "MIRADOR_CONNECT_URL", "http://127.0.0.1:{port}"),
        ("postgres", "MIRADOR_PG_PORT", "{port}"),
    ],
)
def test_a_server_down_is_broken_in_one_line_naming_it(stack_settings, tmp_path, component, setting, value):
    (port,) = free_ports(1)
    env = {"MIRADOR_HOME": str(tmp_path), "MIRADOR_JARS_DIR": str(stack_settings.jars)}
    started = time.monotonic()
    code, screen, stderr = status(os.environ | env, screen="1", **{setting: value.format(port=port)})
    took = time.monotonic() - started
    headline = screen.splitlines()[0]
    assert code == BROKEN, screen
    assert headline.startswith(f"mirador status: BROKEN - {NAMED[component]}"), headline
    assert str(port) in headline and stderr == "", stderr
    print(f"{component} down: answered in {took:.1f}s")


def test_a_paused_connector_is_broken(stack_settings, tmp_path):
    connect = stack_settings.connect_rest_url
    name = "mirador-inventory"

    def state() -> str:
        return httpx.get(f"{connect}/connectors/{name}/status", timeout=10).json()["connector"]["state"]

    env = os.environ | {"MIRADOR_HOME": str(tmp_path), "MIRADOR_JARS_DIR": str(stack_settings.jars)}
    httpx.put(f"{connect}/connectors/{name}/pause", timeout=10).raise_for_status()
    try:
        deadline = time.monotonic() + 30
        while state() != "PAUSED":
            assert time.monotonic() < deadline, "the connector did not pause"
            time.sleep(0.2)
        code, report, stderr = status(env)
    finally:
        httpx.put(f"{connect}/connectors/{name}/resume", timeout=10).raise_for_status()
    assert code == BROKEN and stderr == "", stderr
    assert report["reason"].startswith("inventory: connector mirador-inventory is PAUSED"), report["reason"]
    assert report["services"]["inventory"]["connector"]["state"] == "PAUSED"
    deadline = time.monotonic() + 60
    while state() != "RUNNING":
        assert time.monotonic() < deadline, "the connector did not resume"
        time.sleep(0.2)
