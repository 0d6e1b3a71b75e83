"""`mirador build` and `mirador run`: keep the view tables fresh and publish them to readers; `mirador
verify`, `views` and `sql` read what they hold.

Exit codes: 0 done; 1 terminal failure, or a model or data test failed (nothing was published);
2 usage error; 3 transient failure (the warehouse file held past MIRADOR_LOADER_LOCK_TIMEOUT, Kafka
unreachable, another `mirador run` already running): run again later.
"""

from __future__ import annotations

import csv
import sys
import threading
from contextlib import ExitStack

import click
import duckdb
from pydantic import ValidationError

from warehouse.cli import EXIT_TERMINAL, EXIT_TRANSIENT, _stop_on_signals
from warehouse.configuration import PipelineSettings
from warehouse.exceptions import LoaderError, TransientError
from warehouse.load import Loader
from warehouse.lock import WarehouseLock
from warehouse.pipeline import Pipeline, single_run
from warehouse.publish import current_publication


def _settings() -> PipelineSettings:
    try:
        return PipelineSettings()
    except ValidationError as err:
        click.secho(f"error: invalid configuration: {err}", fg="red", err=True)
        sys.exit(EXIT_TERMINAL)


@click.command()
@click.option("--full-refresh", is_flag=True, help="Rebuild every model from the raw changelog.")
def build(full_refresh: bool) -> None:
    """Build the view tables affected by what was loaded since the last build, then publish them."""
    settings = _settings()
    try:
        cycle = Pipeline(settings).build_and_publish(full_refresh=full_refresh)
    except LoaderError as err:
        click.secho(f"error: {err}", fg="red", err=True)
        sys.exit(EXIT_TRANSIENT if err.transient else EXIT_TERMINAL)
    result = cycle.build
    if not result.success:
        click.secho(f"build {result.build_id} failed; nothing published:", fg="red", err=True)
        for failure in result.failures:
            click.echo(f"  {failure}", err=True)
        sys.exit(EXIT_TERMINAL)
    if result.skipped:
        click.echo(f"nothing new since batch {result.through_batch}; watermark refreshed")
    else:
        click.echo(f"built {' '.join(result.selected)} through batch {result.through_batch} in "
                   f"{result.seconds:.2f}s; published {cycle.publication.file if cycle.publication else '-'}")


@click.command()
def run() -> None:
    """Load -> build -> publish in a loop until SIGTERM (the current cycle finishes first)."""
    settings = _settings()
    stop = threading.Event()
    _stop_on_signals(stop)
    try:
        with single_run(settings):
            Pipeline(settings).run(stop)
    except LoaderError as err:
        click.secho(f"error: {err}", fg="red", err=True)
        sys.exit(EXIT_TRANSIENT if err.transient else EXIT_TERMINAL)


@click.command()
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for the views to catch up.")
@click.option("--limit", default=20, show_default=True, help="Differences shown per view table.")
def verify(timeout: float, limit: int) -> None:
    """Recompute the view tables from the services' Postgres databases and compare (exit 1 on a difference).

    Waits for the published views to include every change committed so far: while `mirador run` runs
    it waits for it, otherwise it loads and builds what arrived itself.
    """
    from cdc.config import StackSettings
    from warehouse.verify import verify as reconcile

    settings = _settings()
    try:
        with ExitStack() as stack:
            try:
                stack.enter_context(single_run(settings))
                pipeline = Pipeline(settings)
                catch_up = lambda: (Loader(settings).run(), pipeline.build_and_publish())  # noqa: E731
            except TransientError:
                catch_up = None  # `mirador run` is running: wait for it
            report = reconcile(StackSettings(), settings.published, timeout=timeout, limit=limit,
                               catch_up=catch_up)
    except LoaderError as err:
        click.secho(f"error: {err}", fg="red", err=True)
        sys.exit(EXIT_TRANSIENT if err.transient else EXIT_TERMINAL)
    click.echo(f"publication {report.publication.build_id} (waited {report.waited_seconds:.1f}s for it to "
               f"catch up with the sources)")
    for table, rows in report.rows_compared.items():
        found = [d for d in report.differences if d.table == table]
        status = click.style("ok", fg="green") if not found else click.style(f"{len(found)} differences", fg="red")
        click.echo(f"  {table:<22} {rows:>9,} rows  {status}")
        for diff in found:
            click.echo(f"    {diff.key}: {diff.side}")
            if diff.side == "values":
                for column, value in diff.expected.items():
                    if value != diff.published[column]:
                        click.echo(f"      {column}: source {value!r}, published {diff.published[column]!r}")
    sys.exit(EXIT_TERMINAL if report.differences else 0)


@click.command()
@click.option("--limit", default=3, show_default=True, help="Rows shown per view table.")
def views(limit: int) -> None:
    """Show the published view tables: rows, a sample, and the watermark they carry."""
    settings = _settings()
    publication = current_publication(settings.published)
    if publication is None:
        click.secho("nothing published yet: run `mirador build` (after `mirador load --once`) or `mirador run`",
                    fg="yellow", err=True)
        sys.exit(EXIT_TERMINAL)
    click.echo(f"publication {publication.build_id}, built {publication.built_at}, batch {publication.through_batch} "
               f"(data tests passed through batch {publication.tested_through_batch})")
    for service, mark in sorted(publication.watermark.items()):
        click.echo(f"  {service:<10} includes source commits up to {mark.get('commit_ts') or '-'} "
                   f"(LSN {mark.get('lsn') or '-'})")
    with duckdb.connect(str(publication.path(settings.published)), read_only=True) as conn:
        for table in publication.tables:
            count = conn.execute(f'select count(*) from "{table}"').fetchall()[0][0]
            click.echo(f"\n{table}: {count:,} rows")
            relation = conn.sql(f'select * from "{table}" limit {int(limit)}')
            click.echo(str(relation))


@click.command()
@click.argument("query", required=False)
@click.option("--published", is_flag=True,
              help="Query the current publication of the view tables (never waits) instead of the working file.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the result as CSV with a header line.")
@click.option("--timeout", default=900.0, show_default=True, help="Seconds to wait for the working file.")
def sql(query: str | None, published: bool, as_csv: bool, timeout: float) -> None:
    """Run QUERY (or SQL read from standard input) read-only against the warehouse and print the result.

    It takes the warehouse lock like any process opening the file, so `mirador run` hands the file over
    after its cycle and waits while the query runs (ADR 19). The working file holds `raw`, `staging`, `marts` and `loader`; while the pipeline holds it, this
    waits for its turn (exit 3 after --timeout). Exit 1 if DuckDB refuses the query.
    """
    text = query if query is not None else sys.stdin.read()
    if not text.strip():
        raise click.UsageError("give a query, as an argument or on standard input")
    settings = _settings()
    if published:
        publication = current_publication(settings.published)
        if publication is None:
            _fail(f"nothing published yet in {settings.published}: run `mirador build` or `mirador run`")
        _query(str(publication.path(settings.published)), text, as_csv)
        return
    if not settings.warehouse.exists():
        _fail(f"no warehouse at {settings.warehouse} yet: run `mirador load --once` first")
    try:
        with WarehouseLock(settings.warehouse, "mirador sql", timeout=timeout):
            _query(str(settings.warehouse), text, as_csv)
    except TransientError as err:
        click.secho(f"error: {err}", fg="red", err=True)
        sys.exit(EXIT_TRANSIENT)


def _query(path: str, text: str, as_csv: bool) -> None:
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
