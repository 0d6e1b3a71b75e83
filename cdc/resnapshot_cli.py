"""`mirador resnapshot SERVICE.TABLE`: the command line of cdc/resnapshot.py."""

from __future__ import annotations

import sys

import click

from cdc import resnapshot as ops
from cdc.cli import settings
from cdc.config import SERVICES
from cdc.errors import StackError, UnknownTarget, Unreachable


@click.command()
@click.argument("target", required=False, metavar="SERVICE.TABLE")
@click.option("--wait/--no-wait", default=False, help="Wait until the table has been read again.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds --wait may take.")
@click.option("--status", "show_status", is_flag=True, help="Show each connector's running snapshot instead.")
def resnapshot(target: str | None, wait: bool, timeout: float, show_status: bool) -> None:
    """Read one table again (a Debezium incremental snapshot) while changes keep streaming.

    Exit codes: 0 ok, 1 terminal, 2 usage, 3 transient (Postgres or Kafka Connect not answering).
    """
    s = settings()
    try:
        if show_status:
            for service in SERVICES:
                click.echo(_describe(ops.progress(s, service)))
            return
        if not target:
            raise UnknownTarget("name the table to read again as SERVICE.TABLE", "for example customers.customers")
        req = ops.request(s, target)
        click.echo(f"resnapshot of {req.service}.{req.table} requested (signal {req.signal_id})")
        if wait:
            seconds = ops.wait(s, req, timeout)
            click.echo(f"resnapshot of {req.service}.{req.table} read in {seconds:.1f}s")
    except StackError as err:
        code = 2 if isinstance(err, UnknownTarget) else 3 if isinstance(err, Unreachable) else 1
        click.secho(f"error: {err.problem}" + (f"; {err.fix}" if err.fix else ""), fg="red", err=True)
        sys.exit(code)


def _describe(state: ops.SnapshotProgress) -> str:
    if not state.running:
        return f"{state.service:<10} no snapshot running"
    return f"{state.service:<10} reading {', '.join(state.tables)} (signal {state.signal_id})"
