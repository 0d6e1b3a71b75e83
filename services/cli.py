"""`mirador services up | down | status`."""

from __future__ import annotations

import sys

import click
from pydantic import ValidationError

from services import runner

NAMES = list(runner.SETTINGS)


def _names(names: tuple[str, ...]) -> list[str]:
    return [n for n in NAMES if n in names] if names else NAMES


def invalid(err: ValidationError) -> str:
    return "invalid configuration: " + "; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())


def fail(message: str) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(1)


@click.group()
def services() -> None:
    """Run the write services (customers, orders, invoices, inventory) as uvicorn processes."""


@services.command()
@click.argument("names", nargs=-1, type=click.Choice(NAMES))
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="uvicorn workers per service (default: MIRADOR_<SERVICE>_WORKERS, else 1).",
)
@click.option("--timeout", default=60.0, show_default=True, help="Seconds each service may take to be ready.")
def up(names: tuple[str, ...], workers: int | None, timeout: float) -> None:
    """Start the services (all, or those named) and wait until each answers /readyz; idempotent."""
    try:
        started = runner.up(_names(names), workers=workers, timeout=timeout)
    except runner.ServiceError as err:
        fail(str(err))
    except ValidationError as err:
        fail(invalid(err))
    for s in started:
        click.echo(f"{s.name:<10} {s.url:<24} pid {s.pid:<7} workers {s.workers}")


@services.command()
@click.argument("names", nargs=-1, type=click.Choice(NAMES))
def down(names: tuple[str, ...]) -> None:
    """Stop the services this state dir started, by PID."""
    stopped = runner.down(_names(names))
    click.echo("stopped " + ", ".join(stopped) if stopped else "no service was running")


@services.command()
def status() -> None:
    """Show each service's URL, PID and readiness. Exit 1 if any is not ready."""
    try:
        report = runner.status(NAMES)
    except ValidationError as err:
        fail(invalid(err))
    for s in report:
        state = click.style("ready", fg="green") if s.ready else click.style("down ", fg="red")
        click.echo(f"{s.name:<10} {state} {s.url:<24} pid {s.pid or '-'}")
    sys.exit(0 if all(s.ready for s in report) else 1)
