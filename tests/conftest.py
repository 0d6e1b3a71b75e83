"""Session fixtures over the real stack: Postgres, Kafka and Kafka Connect with Debezium.

The stack named by MIRADOR_PG_DSN / MIRADOR_KAFKA_BOOTSTRAP / MIRADOR_CONNECT_URL is used as it is;
otherwise the native stack under MIRADOR_HOME is started once (or found running) and, if this
session started it, stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdc import stack
from cdc.config import SERVICES, StackSettings
from mirador.home import PROJECT_ROOT
from tests.ports import free_ports
from tests.warehouse.commands import MIRADOR


@pytest.fixture(scope="session")
def stack_settings() -> Iterator[StackSettings]:
    settings = StackSettings()
    startup = stack.up(settings)
    yield settings
    stack.stop_components(settings, list(startup.started))


@pytest.fixture
def pipeline_env(stack_settings):
    """The four services running on free ports, and the environment of a fresh mirador home beside them:
    (env, service URLs, home)."""
    home = PROJECT_ROOT / ".mirador" / f"test-e2e-{uuid.uuid4().hex[:8]}"
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    # Only the stack's settings carry over; other fixtures' ports, tokens, DSNs and paths do not.
    own_keys = (*(f"MIRADOR_{s.upper()}_" for s in SERVICES), "MIRADOR_WAREHOUSE_PATH", "MIRADOR_LOADER_")
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(own_keys)}
    env = {
        **inherited,
        "MIRADOR_HOME": str(home),
        "MIRADOR_JARS_DIR": str(stack_settings.jars),
        **{f"MIRADOR_{s.upper()}_PORT": str(p) for s, p in ports.items()},
    }
    subprocess.run([MIRADOR, "services", "up"], env=env, check=True, timeout=120, cwd=PROJECT_ROOT)
    yield env, {s: f"http://127.0.0.1:{p}" for s, p in ports.items()}, home
    subprocess.run([MIRADOR, "services", "down"], env=env, timeout=120, cwd=PROJECT_ROOT)
    shutil.rmtree(home, ignore_errors=True)


CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def browser():
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: `apt-get install -y chromium chromium-driver` (.ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1440,1400",
        "--disable-extensions",
        "--no-first-run",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(15)
    yield driver
    driver.quit()


MARKED_STACK = ("tests/warehouse/", "tests/cdc/")
"""Where every test that starts the stack says so (`@pytest.mark.stack`), so that `-m "not stack"`
is a lane that runs without Postgres, Kafka or Kafka Connect."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [
        item.nodeid
        for item in items
        if item.nodeid.startswith(MARKED_STACK)
        and "stack_settings" in getattr(item, "fixturenames", ())
        and item.get_closest_marker("stack") is None
    ]
    if unmarked:
        raise pytest.UsageError(
            "these tests use the stack (`stack_settings`, directly or through a fixture) "
            "without `@pytest.mark.stack`:\n  " + "\n  ".join(unmarked)
        )
