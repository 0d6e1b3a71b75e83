"""`mirador stack ...`: run the native CDC stack (Postgres, Kafka, Kafka Connect with Debezium).

Exit codes: 0 done (`status`: all up); 1 a failure that says what to fix (`status`: something is down);
3 Kafka Connect did not answer in time (still starting, or overloaded): run again later.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import httpx
from pydantic import ValidationError

from cdc import jars
from cdc import stack as stack_ops
from cdc.config import StackSettings
from cdc.errors import StackError


def settings() -> StackSettings:
    try:
        return StackSettings()
    except ValidationError as err:
        # One line per bad setting, named as the user set it (MIRADOR_CONNECT_WORKERS=0 ...).
        for problem in err.errors():
            where = ".".join(str(part) for part in problem["loc"])
            key = f"MIRADOR_{where.upper()}: " if where else ""
            message = problem["msg"].removeprefix("Value error, ")
            click.secho(f"error: invalid configuration: {key}{message}", fg="red", err=True)
        sys.exit(1)


def _fail(err: StackError) -> None:
    click.secho(f"error: {err.render()}", fg="red", err=True)
    sys.exit(1)


def _no_answer(s: StackSettings, err: httpx.HTTPError) -> None:
    """Kafka Connect's REST API timed out or refused: one line, exit 3."""
    try:
        tried = f"{err.request.method} {err.request.url}"
    except RuntimeError:
        tried = s.connect_rest_url
    click.secho(
        f"error: Kafka Connect did not answer {tried} ({type(err).__name__}: {err}); fix: run the command again "
        f"once it has started (its log: {s.logs / 'connect.log'})",
        fg="red",
        err=True,
    )
    sys.exit(3)


@click.group()
def stack() -> None:
    """Run the CDC stack: PostgreSQL, Kafka (KRaft), Kafka Connect with Debezium."""


@stack.command()
@click.option("--no-connectors", is_flag=True, help="Start the servers but register no connector.")
def up(no_connectors: bool) -> None:
    """Start every component that is not running and register the connectors; idempotent."""
    s = settings()
    try:
        result = stack_ops.up(s, connectors=not no_connectors)
    except StackError as err:
        _fail(err)
    except httpx.HTTPError as err:
        _no_answer(s, err)
    for name, seconds in result.started.items():
        click.echo(f"started  {name:<11} in {seconds:5.1f}s")
    for name in result.already_running:
        click.echo(f"running  {name}")
    for name in result.external:
        click.echo(f"external {name}")
    click.echo(f"stack up in {result.total_seconds:.1f}s (state in {s.home})")


@stack.command()
def down() -> None:
    """Stop the components this state dir started, by PID; brought servers are left alone."""
    stopped = stack_ops.down(settings())
    click.echo("stopped " + ", ".join(stopped) if stopped else "nothing was running")


@stack.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def status(as_json: bool) -> None:
    """Show each component (each Connect worker with the tasks it holds), connector and task, and the WAL each
    slot retains. Exit 1 if any is down."""
    s = settings()
    try:
        report = stack_ops.status(s)
    except httpx.HTTPError as err:
        _no_answer(s, err)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        for name, c in report["components"].items():
            colour = "green" if c["state"] == "up" else "red"
            click.echo(
                f"{name:<10} "
                + click.style(f"{c['state']:<5}", fg=colour)
                + f" {c['mode']:<9} {c['address']:<28} pid {c['pid'] or '-'}"
            )
        for w in report["workers"]:
            held = ", ".join(w["tasks"]) or "-"
            click.echo(f"worker     {w['worker_id']:<20} {w['component'] or '-':<10} tasks {held}")
        for c in report["connectors"]:
            placed = zip(c["tasks"], c["task_workers"], strict=True)
            tasks = [f"{state} on {worker}" if worker else state for state, worker in placed]
            click.echo(f"connector  {c['name']:<20} {c['state']:<8} tasks {', '.join(tasks) or '-'}")
        for slot in report["slots"]:
            click.echo(
                f"slot       {slot['slot_name']:<20} {'active' if slot['active'] else 'inactive':<8} "
                f"retains {slot['retained_bytes'] / 2**20:.1f} MiB"
            )
    healthy = all(c["state"] == "up" for c in report["components"].values()) and all(
        c["state"] == "RUNNING" and all(t == "RUNNING" for t in c["tasks"]) for c in report["connectors"]
    )
    sys.exit(0 if healthy else 1)


@stack.command("jars")
@click.option("--force", is_flag=True, help="Resolve again even if cached.")
def jars_cmd(force: bool) -> None:
    """Resolve the Kafka, Connect and Debezium jars from Maven Central (cached)."""
    s = settings()
    try:
        path = jars.resolve(s, force=force)
    except StackError as err:
        _fail(err)
    click.echo(f"jars in {path}: {jars.size_mib(path):.1f} MiB")


@stack.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("tests/fixtures/debezium"),
    show_default=True,
    help="Where the .jsonl fixtures go.",
)
def capture(out: Path) -> None:
    """Capture real Debezium messages for every change kind into JSONL test fixtures."""
    from cdc.capture import capture_fixtures

    try:
        written = capture_fixtures(settings(), out)
    except StackError as err:
        _fail(err)
    for path, count in written.items():
        click.echo(f"{count:4d} messages -> {path}")
