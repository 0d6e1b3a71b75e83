"""`mirador demo`: the whole system running live, until Ctrl-C or for a bounded time.

It starts what is not running yet (the CDC stack, the four write services, `mirador run`, `mirador
serve`), sends shop traffic through the services' commands, and prints where to look. On Ctrl-C,
SIGTERM (`mirador demo --stop`, `make down`) or after `--seconds`, it stops the traffic, checks the
views against the services' databases (`mirador verify`), stops what it started, newest first, by
PID, and sums up: commands sent, changes captured, publications made, the verify result.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import click
import httpx

from mirador import processes as process
from mirador.home import default_home

RUN_MARKER = "mirador.cli\0run"
SIMULATE_MARKER = "mirador.cli\0simulate"
DEMO_MARKER = "mirador.cli\0demo"
SERVICES = ["customers", "orders", "invoices", "inventory"]


def mirador(*args: str) -> list[str]:
    return [sys.executable, "-m", "mirador.cli", *args]


class Demo:
    def __init__(self, home: Path, rate: float) -> None:
        self.home = home
        self.rate = rate
        self.run_dir, self.logs = home / "run", home / "logs"
        self.started: list[str] = []  # what to stop, in the order started
        self.stack_started: list[str] = []
        self.stopping = threading.Event()
        self.began = datetime.now(UTC)
        self.t0 = time.monotonic()

    # -- starting ------------------------------------------------------------------------------------

    def step(self, what: str, start) -> None:
        click.echo(f"  {what:<44}", nl=False)
        t = time.monotonic()
        note = start()
        click.echo(f"{time.monotonic() - t:6.1f} s{'  ' + note if note else ''}")

    def start_stack(self) -> str:
        from cdc import stack
        from cdc.config import StackSettings

        startup = stack.up(StackSettings())
        self.stack_started = [name for name in startup.started if name != "connectors"]
        if self.stack_started:
            self.started.append("stack")
        return f"(already running: {', '.join(startup.already_running)})" if startup.already_running else ""

    def start_services(self) -> str:
        from services import runner

        before = {s.name for s in runner.status(SERVICES) if s.pid}
        self.services = runner.up(SERVICES)
        self.services_started = [s.name for s in self.services if s.name not in before]
        if self.services_started:
            self.started.append("services")
        return f"(already running: {', '.join(sorted(before))})" if before else ""

    def start_run(self) -> str:
        pidfile = self.run_dir / "demo-run.pid"
        if process.running_pid(pidfile, RUN_MARKER):
            return "(already running)"
        process.spawn(mirador("run"), pidfile, self.logs / "run.log")
        self.started.append("run")
        return f"log {self.logs / 'run.log'}"

    def start_serve(self) -> str:
        from api.cli import MARKER
        from api.configuration import ApiSettings

        self.api = ApiSettings()
        already = process.running_pid(self.home / "run" / "api.pid", MARKER)
        done = subprocess.run(mirador("serve", "--detach"), capture_output=True, text=True)
        if done.returncode:
            raise click.ClickException(f"mirador serve --detach failed:\n{done.stdout}{done.stderr}")
        if not already:
            self.started.append("serve")
        return "(already running)" if already else ""

    def start_traffic(self) -> str:
        process.spawn(
            mirador("simulate", "--rate", f"{self.rate:g}", "--duration", "0", "--seed", str(int(time.time()))),
            self.run_dir / "demo-simulate.pid",
            self.logs / "simulate.log",
        )
        self.started.append("simulate")
        return f"{self.rate:g} commands/s, log {self.logs / 'simulate.log'}"

    def first_live_row(self) -> str:
        """Until the read API returns an order placed since the demo began: the system is live."""
        url = f"{self.api.base_url}/views/orders_with_invoices"
        since = self.began.isoformat().replace("+00:00", "Z")
        while not self.stopping.is_set():
            try:
                answer = httpx.get(url, params={"placed_at__gte": since, "limit": 1}, timeout=5)
                if answer.status_code == 200 and answer.json()["rows"]:
                    return f"{time.monotonic() - self.t0:.1f} s after `mirador demo` began"
            except httpx.HTTPError:
                pass
            self.stopping.wait(0.2)
        return "(stopped before)"

    def where_to_look(self) -> None:
        orders = next(s.url for s in self.services if s.name == "orders")
        api = self.api.base_url
        click.echo(f"""
  the page (live views, an order form)  {api}/?orders={orders}
  the read API's docs                   {api}/docs
  the services' docs                    {"  ".join(f"{s.url}/docs" for s in self.services)}
  a view over GET                       curl '{api}/views/orders_with_invoices?limit=3'
  the stack                             mirador stack status
""")

    # -- stopping ------------------------------------------------------------------------------------

    def stop(self) -> dict[str, str]:
        summary: dict[str, str] = {}
        if "simulate" not in self.started:  # it did not get as far as traffic: nothing to check or count
            self.stop_started()
            return {"verify": "not run: the demo did not start"}
        self.stop_started("simulate")
        sent = re.findall(
            r"^(\d+) commands in ([\d.]+)s: ([\d.]+) commands/s.*$",
            (self.logs / "simulate.log").read_text(errors="replace"),
            re.M,
        )
        summary["commands sent"] = (
            f"{sent[-1][0]} in {float(sent[-1][1]):.0f} s ({sent[-1][2]}/s)" if sent else "(no summary in the log)"
        )
        click.echo("  checking the views against the services' databases (mirador verify) ...")
        verify = subprocess.run(mirador("verify", "--timeout", "180"), capture_output=True, text=True)
        lines = (verify.stdout + verify.stderr).strip().splitlines()
        views = re.findall(r"^\s+(\w+)\s+([\d,]+) rows\s+ok$", verify.stdout, re.M)
        summary["verify"] = (
            f"passed: {len(views)} view tables equal the services' databases ("
            + ", ".join(f"{name} {rows} rows" for name, rows in views)
            + ")"
            if verify.returncode == 0
            else f"FAILED (exit {verify.returncode})"
        )
        if verify.returncode:
            click.echo("\n".join(f"    {line}" for line in lines[-20:]))
        self.stop_started("simulate", "serve", "run")
        summary.update(self.counts())  # the warehouse is free once `mirador run` has stopped
        self.stop_started()
        return summary

    def stop_started(self, *parts: str) -> None:
        """Stop what this demo started (of `parts`, or all), newest first."""
        for part in [p for p in reversed(self.started) if not parts or p in parts]:
            self.started.remove(part)
            if part == "simulate":
                process.stop(self.run_dir / "demo-simulate.pid", SIMULATE_MARKER, timeout=30)
            elif part == "serve":
                subprocess.run(mirador("serve", "--stop"), capture_output=True)
            elif part == "run":
                process.stop(self.run_dir / "demo-run.pid", RUN_MARKER, timeout=180)
            elif part == "services":
                from services import runner

                runner.down(self.services_started)
            elif part == "stack":
                from cdc import stack
                from cdc.config import StackSettings

                stack.stop_components(StackSettings(), self.stack_started)

    def counts(self) -> dict[str, str]:
        """Changes landed and publications made since the demo began, from the warehouse's own ledger."""
        since = self.began.strftime("%Y-%m-%d %H:%M:%S.%f+00")
        query = (
            f"select (select coalesce(sum(events), 0) from loader.batches where committed_at >= '{since}'), "
            f"(select count(*) from loader.builds where success and finished_at >= '{since}')"
        )
        done = subprocess.run(mirador("sql", "--csv", "--timeout", "60", query), capture_output=True, text=True)
        try:
            events, builds = done.stdout.strip().splitlines()[-1].split(",")
        except (ValueError, IndexError):
            return {"changes captured": f"(could not read the warehouse: {done.stderr.strip()[-200:]})"}
        return {"changes captured": f"{events} change events landed", "publications made": builds}


def stop_running_demo(home: Path) -> bool:
    """`mirador demo --stop`: ask a running demo to stop what it started; if it is gone, stop its children."""
    stopped = process.stop(home / "run" / "demo.pid", DEMO_MARKER, timeout=400)
    for name, marker in (("demo-simulate", SIMULATE_MARKER), ("demo-run", RUN_MARKER)):
        stopped |= process.stop(home / "run" / f"{name}.pid", marker, timeout=180)
    return stopped


@click.command()
@click.option(
    "--seconds",
    type=click.FloatRange(min=0),
    default=0,
    help="Run this long, then stop (default 0: until Ctrl-C or `mirador demo --stop`).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0.1),
    default=20,
    show_default=True,
    help="Commands per second the simulated shop sends.",
)
@click.option("--stop", is_flag=True, help="Stop a running demo (what `make down` does first).")
def demo(seconds: float, rate: float, stop: bool) -> None:
    """The system live: the stack, the services, `mirador run`, `mirador serve` and shop traffic,
    until Ctrl-C; then `verify`, everything it started stopped, and a summary."""
    home = default_home()
    if stop:
        click.echo("stopped the demo" if stop_running_demo(home) else "no demo running")
        return
    pidfile = home / "run" / "demo.pid"
    if pid := process.running_pid(pidfile, DEMO_MARKER):
        raise click.ClickException(f"a demo is already running (PID {pid})\n  fix: `mirador demo --stop` first")
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(f"{os.getpid()}\n")

    session = Demo(home, rate)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: session.stopping.set())
    click.echo("starting")
    try:
        for what, start in (
            ("the CDC stack (Postgres, Kafka, Connect)", session.start_stack),
            ("the write services", session.start_services),
            ("mirador run (load -> build -> publish)", session.start_run),
            ("mirador serve (the read API)", session.start_serve),
            ("shop traffic (mirador simulate)", session.start_traffic),
            ("the first live row through the read API", session.first_live_row),
        ):
            if session.stopping.is_set():
                break
            session.step(what, start)
        if not session.stopping.is_set():
            session.where_to_look()
            click.echo(
                f"running for {seconds:g} s"
                if seconds
                else "running until Ctrl-C (or `make down` from another terminal)"
            )
            deadline = time.monotonic() + seconds if seconds else None
            while not session.stopping.wait(0.5):
                if deadline and time.monotonic() >= deadline:
                    break
    except Exception as err:  # noqa: BLE001 - stop what was started, then say what failed
        click.secho(f"error: {err}", fg="red", err=True)
        session.stopping.set()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not leave things half-stopped
        click.echo("\nstopping")
        summary = session.stop()
        pidfile.unlink(missing_ok=True)
    click.echo("\nsummary")
    for key, value in summary.items():
        click.echo(f"  {key:<18} {value}")
    sys.exit(0 if summary.get("verify", "").startswith("passed") else 1)
