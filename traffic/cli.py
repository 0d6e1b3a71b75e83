"""`mirador simulate`: shop-like traffic through the write services' commands, over HTTP as a client would."""

from __future__ import annotations

import asyncio
import signal
import sys

import click
from pydantic import ValidationError

from services import runner
from services.cli import NAMES, fail, invalid


@click.command()
@click.option(
    "--rate", default=50.0, show_default=True, type=click.FloatRange(min=0.1), help="Commands per second to send."
)
@click.option(
    "--duration",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to run (0: until SIGINT or SIGTERM, which end any run early with its summary).",
)
@click.option("--seed", default=1, show_default=True, help="Seed of the shop's choices.")
@click.option(
    "--concurrency",
    default=64,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Most commands in flight at once.",
)
def simulate(rate: float, duration: float, seed: int, concurrency: int) -> None:
    """Send shop-like traffic through the services' commands (start them with `mirador services up`).

    Customers sign up, orders are placed with lines, paid, invoiced, shipped (stock is sold) or
    cancelled; stock is received; some customers and products change or go. Prints commands/s,
    latency and errors each second, and a summary per command at the end.
    """
    import uvloop

    from traffic.driver import Stats
    from traffic.driver import simulate as run

    try:
        settings = {name: runner.settings_of(name) for name in NAMES}
    except ValidationError as err:
        fail(invalid(err))
    down = [name for name, s in settings.items() if not runner.ready(s)]
    if down:
        fail(
            f"{', '.join(down)} not ready at {', '.join(settings[n].base_url for n in down)}; "
            "fix: start the services with `mirador services up` (they wait for Postgres: `mirador stack up`)"
        )

    def tick(second: float, window: Stats) -> None:
        click.echo(
            f"{second:5.0f}s {len(window.latencies):6d} commands/s   p50 {window.percentile(50):6.1f} ms   "
            f"p99 {window.percentile(99):6.1f} ms   refused {window.refused:3d}   errors {window.errors:3d}"
        )

    async def until_stopped():
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        return await run(
            {n: s.base_url for n, s in settings.items()},
            {n: s.token.get_secret_value() for n, s in settings.items()},
            rate=rate,
            duration=duration or 10.0**9,
            seed=seed,
            concurrency=concurrency,
            tick=tick,
            stop=stop,
        )

    report = uvloop.run(until_stopped())
    click.echo(
        f"\n{'command':<16} {'sent':>6} {'p50 ms':>8} {'p99 ms':>8} {'refused':>8} {'rejected':>9} {'errors':>7}"
    )
    for kind, stats in sorted(report.by_kind.items()):
        click.echo(
            f"{kind:<16} {len(stats.latencies):6d} {stats.percentile(50):8.1f} {stats.percentile(99):8.1f} "
            f"{stats.refused:8d} {stats.rejected:9d} {stats.errors:7d}"
        )
    t = report.total
    # Answers by status (and 5xx by problem type), then the summary, last: scripts read the last line.
    click.echo("\nstatuses: " + ", ".join(f"{status or 'no answer'} {n}" for status, n in sorted(t.statuses.items())))
    if t.problems:
        click.echo("5xx: " + ", ".join(f"{kind} {n}" for kind, n in sorted(t.problems.items())))
    click.echo(
        f"{len(t.latencies)} commands in {report.seconds:.1f}s: {report.rate:.1f} commands/s, "
        f"p50 {t.percentile(50):.1f} ms, p99 {t.percentile(99):.1f} ms, "
        f"{t.refused} refused (409/412), {t.rejected} rejected (other 4xx), {t.errors} errors (5xx or no answer)"
    )
    sys.exit(1 if t.errors else 0)
