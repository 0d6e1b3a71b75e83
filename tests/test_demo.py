"""`make demo`, bounded, from the README's own command: the system comes up live, the page in chromium
follows the publications, and on the way out it verifies, sums up and stops what it started."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import threading
import time

import httpx
import pytest

from mirador.home import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


@pytest.mark.stack
@pytest.mark.timeout(900)
def test_make_demo_runs_live_then_stops_what_it_started(stack_settings, browser):
    command = re.search(r"^make demo DEMO_SECONDS=\d+", README.read_text(), re.M)
    assert command, "the README shows how to run the demo for a bounded time"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIRADOR_") or k == "MIRADOR_JARS_DIR"}
    demo = subprocess.Popen(
        shlex.split(command.group(0)),
        cwd=PROJECT_ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while not (
            page := next((m.group(1) for line in lines if (m := re.search(r"the page .*?(http\S+)", line))), None)
        ):
            assert demo.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.2)
        output = "".join(lines)
        assert re.search(r"the first live row through the read API\s+[\d.]+ s\s+[\d.]+ s after", output), output
        services = re.search(r"the services' docs\s+(.*)", output).group(1).split()

        browser.get(page)
        wait = lambda check, what, timeout=30: _wait(check, what, timeout, lines)  # noqa: E731
        wait(lambda: browser.find_element("tag name", "body").get_attribute("data-ready") == "true", "the page loads")
        wait(
            lambda: browser.find_elements("css selector", 'section.panel[data-view="orders_with_invoices"] tbody tr'),
            "orders show",
        )
        builds = set()
        wait(
            lambda: builds.add(browser.find_element("id", "build-id").text) or len(builds) >= 3,
            "the page follows three publications without a reload",
            timeout=60,
        )
        live = browser.find_elements("css selector", 'section.panel[data-view="orders_with_invoices"] .live')
        assert live and live[0].text == "live"

        assert demo.wait(timeout=600) == 0, "".join(lines)
    finally:
        if demo.poll() is None:
            subprocess.run(["make", "down"], cwd=PROJECT_ROOT, env=env, timeout=600)
    reader.join(timeout=10)
    output = "".join(lines)
    summary = output[output.index("\nsummary") :]
    sent = int(re.search(r"commands sent\s+(\d+)", summary).group(1))
    captured = int(re.search(r"changes captured\s+(\d+)", summary).group(1))
    assert sent > 100 and captured >= sent, summary  # a command writes at least one row
    assert int(re.search(r"publications made\s+(\d+)", summary).group(1)) >= 3, summary
    assert re.search(r"verify\s+passed: 4 view tables", summary), summary
    # What it started is stopped; the stack this test session runs was already there and stays.
    assert not any(_answers(f"{url.removesuffix('/docs')}/readyz") for url in services), summary
    assert not _answers(page.split("/?")[0] + "/healthz")
    assert httpx.get(f"{stack_settings.connect_rest_url}/connectors", timeout=5).status_code == 200


def _wait(check, what: str, timeout: float, lines: list[str]):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if value := check():
                return value
        except Exception:  # noqa: BLE001 - the page is redrawing; look again
            pass
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s: {what}\n" + "".join(lines[-30:]))
