"""Session fixtures over the real stack: Postgres, Kafka and Kafka Connect with Debezium.

The stack named by MIRADOR_PG_DSN / MIRADOR_KAFKA_BOOTSTRAP / MIRADOR_CONNECT_URL is used as it is;
otherwise the native stack under MIRADOR_HOME is started once (or found running) and, if this
session started it, stopped at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cdc import stack
from cdc.config import StackSettings


@pytest.fixture(scope="session")
def stack_settings() -> Iterator[StackSettings]:
    settings = StackSettings()
    startup = stack.up(settings)
    yield settings
    stack.stop_components(settings, list(startup.started))


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
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1440,1400", "--disable-extensions", "--no-first-run"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(15)
    yield driver
    driver.quit()


MARKED_STACK = ("tests/warehouse/", "tests/cdc/")
"""Where every test that starts the stack says so (`@pytest.mark.stack`), so that `-m "not stack"`
is a lane that runs without Postgres, Kafka or Kafka Connect."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [item.nodeid for item in items if item.nodeid.startswith(MARKED_STACK)
                and "stack_settings" in getattr(item, "fixturenames", ()) and item.get_closest_marker("stack") is None]
    if unmarked:
        raise pytest.UsageError("these tests use the stack (`stack_settings`, directly or through a fixture) "
                                "without `@pytest.mark.stack`:\n  " + "\n  ".join(unmarked))
