"""`mirador status [--json]`: fresh, stale or broken, and where the flow is stuck, for a scheduler to alert on.

Exit codes: 0 fresh; 5 stale (something is later than its threshold: a lagging loader, an old
watermark or publication, a slot retaining too much WAL); 6 broken (a server down, a connector or
task not running, a slot gone or inactive, a build or the data tests failing, a publication that
cannot be read); 1 invalid configuration; 2 usage. They stay clear of `mirador load`'s 3 (transient)
and 4 (dead letters).
"""

from __future__ import annotations

import json
import logging
import sys

import click
from pydantic import ValidationError

EXIT_FRESH, EXIT_TERMINAL, EXIT_STALE, EXIT_BROKEN = 0, 1, 5, 6


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def status(as_json: bool) -> None:
    """Are the published views fresh? Per service: the source, its slot, connector and tasks, the loader's
    lag, the last load, build and publication, the watermark, data tests, dead letters; then a verdict.

    Exit codes: 0 fresh, 5 stale, 6 broken, 1 invalid configuration, 2 usage.
    Never waits for the warehouse lock; each server gets MIRADOR_STATUS_TIMEOUT seconds to answer.
    """
    from cdc.config import StackSettings
    from mirador.status.configuration import StatusSettings
    from mirador.status.report import BROKEN, STALE, gather
    from mirador.status.screen import render

    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        settings, stack = StatusSettings(), StackSettings()
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "settings"
        click.secho(f"error: invalid configuration: MIRADOR_{where.upper()}: {first['msg']}", fg="red", err=True)
        sys.exit(EXIT_TERMINAL)
    report = gather(settings, stack)
    click.echo(json.dumps(report, indent=1, default=str) if as_json else render(report))
    sys.exit({BROKEN: EXIT_BROKEN, STALE: EXIT_STALE}.get(report["verdict"], EXIT_FRESH))
