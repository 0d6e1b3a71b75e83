"""`mirador services up | down | status` and `mirador simulate`."""

from __future__ import annotations

import sys

import click
from pydantic import ValidationError

from services import runner

NAMES = list(runner.SETTINGS)


def _names(names: tuple[str, ...]) -> list[str]:
    return [n for n in NAMES if n in names] if names else NAMES


def _invalid(err: ValidationError) -> str:
    return "invalid configuration: " + "; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())


def _fail(message: str) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(1)


@click.group()
def services() -> None:
    """Run the write services (customers, orders, invoices, inventory) as uvicorn processes."""


@services.command()
@click.argument("names", nargs=-1, type=click.Choice(NAMES))
@click.option("--workers", type=click.IntRange(1, 64), help="uvicorn workers per service "
              "(default: MIRADOR_<SERVICE>_WORKERS, else 1).")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds each service may take to be ready.")
def up(names: tuple[str, ...], workers: int | None, timeout: float) -> None:
    """Start the services (all, or those named) and wait until each answers /readyz; idempotent."""
    try:
        started = runner.up(_names(names), workers=workers, timeout=timeout)
    except runner.ServiceError as err:
        _fail(str(err))
    except ValidationError as err:
        _fail(_invalid(err))
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
        _fail(_invalid(err))
    for s in report:
        state = click.style("ready", fg="green") if s.ready else click.style("down ", fg="red")
        click.echo(f"{s.name:<10} {state} {s.url:<24} pid {s.pid or '-'}")
    sys.exit(0 if all(s.ready for s in report) else 1)


@click.command()
@click.option("--rate", default=50.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Commands per second to send.")
@click.option("--duration", default=30.0, show_default=True, type=click.FloatRange(min=0.1), help="Seconds to run.")
@click.option("--seed", default=1, show_default=True, help="Seed of the shop's choices.")
@click.option("--concurrency", default=64, show_default=True, type=click.IntRange(1, 1000),
              help="Most commands in flight at once.")
def simulate(rate: float, duration: float, seed: int, concurrency: int) -> None:
    """Send shop-like traffic through the services' commands (start them with `mirador services up`).

    Customers sign up, orders are placed with lines, paid, invoiced, shipped (stock is sold) or
    cancelled; stock is received; some customers and products change or go. Prints commands/s,
    latency and errors each second, and a summary per command at the end.
    """
    import uvloop

    from services.simulate.driver import Stats, simulate as run

    try:
        settings = {name: runner.settings_of(name) for name in NAMES}
    except ValidationError as err:
        _fail(_invalid(err))
    down = [name for name, s in settings.items() if not runner.ready(s)]
    if down:
        _fail(f"{', '.join(down)} not ready at {', '.join(settings[n].base_url for n in down)}\n"
              "  fix: start the services with `mirador services up`")

    def tick(second: float, window: Stats) -> None:
        click.echo(f"{second:5.0f}s {len(window.latencies):6d} commands/s   p50 {window.percentile(50):6.1f} ms   "
                   f"p99 {window.percentile(99):6.1f} ms   refused {window.refused:3d}   errors {window.errors:3d}")

    report = uvloop.run(run({n: s.base_url for n, s in settings.items()},
                             {n: s.token.get_secret_value() for n, s in settings.items()},
                             rate=rate, duration=duration, seed=seed, concurrency=concurrency, tick=tick))
    click.echo(f"\n{'command':<16} {'sent':>6} {'p50 ms':>8} {'p99 ms':>8} {'refused':>8} {'rejected':>9} {'errors':>7}")
    for kind, stats in sorted(report.by_kind.items()):
        click.echo(f"{kind:<16} {len(stats.latencies):6d} {stats.percentile(50):8.1f} {stats.percentile(99):8.1f} "
                   f"{stats.refused:8d} {stats.rejected:9d} {stats.errors:7d}")
    t = report.total
    click.echo(f"\n{len(t.latencies)} commands in {report.seconds:.1f}s: {report.rate:.1f} commands/s, "
               f"p50 {t.percentile(50):.1f} ms, p99 {t.percentile(99):.1f} ms, "
               f"{t.refused} refused (409/412), {t.rejected} rejected (other 4xx), {t.errors} errors (5xx or no answer)")
    sys.exit(1 if t.errors else 0)
