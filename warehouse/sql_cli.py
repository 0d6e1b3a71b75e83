"""`mirador sql`: an analyst's query against the warehouse, taking turns with the pipeline.

The working file (raw changelog, staging, marts, loader state) can be open in one process at a time.
`mirador sql` takes the warehouse lock like every other writer: while `mirador run` or a load holds
the file it says who it waits for, `mirador run` hands the file over after its current cycle, and
the query runs on a read-only connection, so it cannot change what the pipeline relies on. The
pipeline waits while the query runs and takes the file back after. `--published` queries the
current publication instead: it never waits and never makes the pipeline wait.
"""

from __future__ import annotations

import csv
import sys

import click
import duckdb

from warehouse.cli import EXIT_TERMINAL, EXIT_TRANSIENT
from warehouse.configuration import PipelineSettings
from warehouse.exceptions import TransientError
from warehouse.lock import WarehouseLock
from warehouse.publish import current_publication


@click.command()
@click.argument("query", required=False)
@click.option("--published", is_flag=True,
              help="Query the current publication of the view tables (never waits) instead of the working file.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the result as CSV with a header line.")
@click.option("--timeout", default=900.0, show_default=True, help="Seconds to wait for the working file.")
def sql(query: str | None, published: bool, as_csv: bool, timeout: float) -> None:
    """Run QUERY (or SQL read from standard input) read-only against the warehouse and print the result.

    The working file holds `raw`, `staging`, `marts` and `loader`; while the pipeline holds it, this
    waits for its turn (exit 3 after --timeout). Exit 1 if DuckDB refuses the query.
    """
    text = query if query is not None else sys.stdin.read()
    if not text.strip():
        raise click.UsageError("give a query, as an argument or on standard input")
    settings = PipelineSettings()
    if published:
        publication = current_publication(settings.published)
        if publication is None:
            _fail(f"nothing published yet in {settings.published}: run `mirador build` or `mirador run`")
        _run(str(publication.path(settings.published)), text, as_csv)
        return
    if not settings.warehouse.exists():
        _fail(f"no warehouse at {settings.warehouse} yet: run `mirador load --once` first")
    try:
        with WarehouseLock(settings.warehouse, "mirador sql", timeout=timeout):
            _run(str(settings.warehouse), text, as_csv)
    except TransientError as err:
        click.secho(f"error: {err}", fg="red", err=True)
        sys.exit(EXIT_TRANSIENT)


def _run(path: str, text: str, as_csv: bool) -> None:
    try:
        with duckdb.connect(path, read_only=True) as conn:
            relation = conn.sql(text)
            if relation is None:  # a statement without a result (SET, PRAGMA ...)
                click.echo("ok")
            elif as_csv:
                out = csv.writer(sys.stdout, lineterminator="\n")
                out.writerow(relation.columns)
                out.writerows(relation.fetchall())
            else:
                click.echo(str(relation))
    except duckdb.Error as err:
        _fail(str(err))


def _fail(message: str) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(EXIT_TERMINAL)
