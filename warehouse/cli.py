"""The warehouse's commands: `mirador load`, `build` and `run` keep the view tables fresh and published;
`mirador verify`, `views` and `sql` read what they hold; `mirador deadletters` shows what the loader
could not load and, after a fix, lands it.

Exit codes: 0 done; 1 terminal failure (configuration, a broken file, a bug: the message names the
stage and offsets), a model or data test failed (nothing was published), or a difference `verify`
found; 2 usage error; 3 transient failure (Kafka unreachable, the warehouse file held by another
process past MIRADOR_LOADER_LOCK_TIMEOUT, another `mirador run` already running): run again later;
4 dead letters: new ones were written and `load --fail-on-dead-letters` was given, or some that
`deadletters replay` tried still fail.

Each command imports the stages it runs when it runs, so `mirador load` (a scheduled job, memory-
bounded) carries neither dbt nor the services' modules (mirador/cli.py).
"""

from __future__ import annotations

import csv
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from contextlib import ExitStack
from typing import TypeVar

import click
import duckdb
from pydantic import ValidationError

from warehouse.exceptions import TerminalError, WarehouseError

EXIT_OK, EXIT_TERMINAL, EXIT_TRANSIENT, EXIT_DEAD_LETTERS = 0, 1, 3, 4

log = logging.getLogger(__name__)

Command = TypeVar("Command", bound=Callable[..., None])


def reports_failures(command: Command) -> Command:
    """A command's failures as the operator reads them: one red line, and the exit code that says
    whether running again later may help."""

    @functools.wraps(command)
    def run(*args, **kwargs) -> None:
        try:
            command(*args, **kwargs)
        except ValidationError as err:
            click.secho(f"error: invalid configuration: {err}", fg="red", err=True)
            sys.exit(EXIT_TERMINAL)
        except WarehouseError as err:
            click.secho(f"error: {err}", fg="red", err=True)
            sys.exit(EXIT_TRANSIENT if err.transient else EXIT_TERMINAL)

    return run  # type: ignore[return-value]


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: object) -> None:
        if stop.is_set():
            log.warning(
                "second %s: exiting without waiting for the batch (positions stay consistent)",
                signal.Signals(signum).name,
            )
            os._exit(128 + signum)
        log.info("%s: finishing the current batch, then exiting", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@click.command()
@click.option("--once", "mode", flag_value="once", help="Drain what is in Kafka now, then exit (for schedulers).")
@click.option("--follow", "mode", flag_value="follow", help="Keep loading until SIGTERM or SIGINT.")
@click.option("--fail-on-dead-letters", is_flag=True, help="Exit 4 if this run wrote dead letters.")
@click.option(
    "--progress/--no-progress",
    "show_progress",
    default=None,
    help="Live progress line (default: on when stderr is a terminal).",
)
@reports_failures
def load(mode: str | None, fail_on_dead_letters: bool, show_progress: bool | None) -> None:
    """Load Debezium change events from Kafka into DuckDB (`raw.<service>__<table>`), exactly once.

    Exit codes: 0 done; 1 terminal failure; 2 usage; 3 transient failure, run again later;
    4 dead letters written (with --fail-on-dead-letters).
    """
    from warehouse.ingest.configuration import LoaderSettings
    from warehouse.ingest.load import Loader
    from warehouse.ingest.progress import Progress
    from warehouse.runtime import status_file

    if mode is None:
        raise click.UsageError("say --once (drain and exit) or --follow (run until SIGTERM)")
    settings = LoaderSettings()
    stop = threading.Event()
    _stop_on_signals(stop)
    report = Loader(settings, follow=mode == "follow", progress=Progress(interactive=show_progress), stop=stop).run()
    status_file.record(status_file.location(settings), "mirador load", load=status_file.load_section(report))
    click.echo(
        f"loaded {report.events:,} events from {report.messages:,} messages in {report.batches} batches "
        f"({report.rate:,.0f} events/s) into {settings.warehouse}; dead letters {report.dead_letters:,}, "
        f"lag {report.lag:,}",
        err=True,
    )
    if fail_on_dead_letters and report.dead_letters:
        sys.exit(EXIT_DEAD_LETTERS)


@click.group()
def deadletters() -> None:
    """Messages the loader could not load: see them, and after a fix (a release, a setting) land them."""


@deadletters.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@reports_failures
def list_dead_letters(as_json: bool) -> None:
    """Dead letters per topic, partition and reason: how many, first and last offset and load time."""
    import json

    from warehouse.ingest.configuration import LoaderSettings
    from warehouse.ingest.deadletters import summary

    found = summary(LoaderSettings())
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    for g in found["groups"]:
        click.echo(
            f"{g['topic']}[{g['partition']}]: {g['count']:,} at offsets {g['first_offset']}..{g['last_offset']}, "
            f"loaded {g['first_loaded_at']} .. {g['last_loaded_at']}\n  {g['stage']}: {g['reason']}"
        )
    click.echo(f"{found['dead_letters']:,} dead letters; {found['replayed']:,} replayed before")


@deadletters.command()
@click.option("--topic", help="Only the dead letters of this topic.")
@click.option("--reason", help="Only the dead letters whose reason contains this text.")
@reports_failures
def replay(topic: str | None, reason: str | None) -> None:
    """Decode the dead letters again with the current decoder and settings and land what now decodes,
    exactly once, at its original offsets; `mirador build` then brings the views up to date.

    Exit codes: 0 every dead letter tried landed (or none to try); 1 terminal failure; 3 transient (the
    warehouse held past MIRADOR_LOADER_LOCK_TIMEOUT), run again later; 4 some still fail (they stay,
    with their new reason).
    """
    from warehouse.ingest.configuration import LoaderSettings
    from warehouse.ingest.deadletters import replay as replay_dead_letters
    from warehouse.runtime import status_file

    settings = LoaderSettings()
    report = replay_dead_letters(settings, topic=topic, reason=reason)
    command = "mirador deadletters replay"
    status_file.record(status_file.location(settings), command, dead_letters=dict(report.remaining))
    batches = f"batches {report.batches[0]}..{report.batches[-1]}" if report.batches else "no batch"
    click.echo(
        f"replayed {report.replayed:,} of {report.tried:,} dead letters in {batches} "
        f"({', '.join(sorted(report.tables)) or 'no raw table'}) in {report.seconds:.1f}s; "
        f"still dead {report.tried - report.replayed:,}"
    )
    for text, count in report.still_dead.most_common():
        click.echo(f"  {count:,}: {text}")
    if report.still_dead:
        sys.exit(EXIT_DEAD_LETTERS)


@click.command()
@click.option("--full-refresh", is_flag=True, help="Rebuild every model from the raw changelog.")
@reports_failures
def build(full_refresh: bool) -> None:
    """Build the view tables affected by what was loaded since the last build, then publish them."""
    from warehouse.runtime.configuration import PipelineSettings
    from warehouse.runtime.pipeline import Pipeline

    # Every build of `mirador build` runs its data tests, through dbt: nothing to record or replay.
    cycle = Pipeline(PipelineSettings(run_replay=False)).build_and_publish(full_refresh=full_refresh)
    result = cycle.build
    if not result.success:
        click.secho(f"build {result.build_id} failed; nothing published:", fg="red", err=True)
        for failure in result.failures:
            click.echo(f"  {failure}", err=True)
        sys.exit(EXIT_TERMINAL)
    if result.skipped:
        click.echo(f"nothing new since batch {result.through_batch}; watermark refreshed")
    else:
        click.echo(
            f"built {' '.join(result.selected)} through batch {result.through_batch} in "
            f"{result.seconds:.2f}s; published {cycle.publication.file if cycle.publication else '-'}"
        )


@click.command()
@reports_failures
def run() -> None:
    """Load -> build -> publish in a loop until SIGTERM (the current cycle finishes first)."""
    from warehouse.runtime.configuration import PipelineSettings
    from warehouse.runtime.pipeline import Pipeline, single_run

    settings = PipelineSettings()
    stop = threading.Event()
    _stop_on_signals(stop)
    with single_run(settings):
        Pipeline(settings).run(stop)


@click.command()
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for the views to catch up.")
@click.option("--limit", default=20, show_default=True, help="Differences shown per view table.")
@reports_failures
def verify(timeout: float, limit: int) -> None:
    """Recompute the view tables from the services' Postgres databases and compare (exit 1 on a difference).

    Waits for the published views to include every change committed so far: while `mirador run` runs
    it waits for it, otherwise it loads and builds what arrived itself.
    """
    from cdc.config import StackSettings
    from warehouse.ingest.load import Loader
    from warehouse.runtime.configuration import PipelineSettings
    from warehouse.runtime.exceptions import AlreadyRunning
    from warehouse.runtime.pipeline import Pipeline, single_run
    from warehouse.verify import verify as reconcile

    settings = PipelineSettings(run_replay=False)  # its builds test, through dbt
    with ExitStack() as stack:
        try:
            stack.enter_context(single_run(settings))
        except AlreadyRunning:
            catch_up = None  # `mirador run` keeps the views fresh: wait for it
        else:
            pipelines: list[Pipeline] = []  # parsed at the first catch-up, after the sources answered

            def catch_up() -> None:
                Loader(settings).run()
                if not pipelines:
                    pipelines.append(Pipeline(settings))
                pipelines[0].build_and_publish()

        report = reconcile(StackSettings(), settings.published, timeout=timeout, limit=limit, catch_up=catch_up)
    click.echo(
        f"publication {report.publication.build_id} (waited {report.waited_seconds:.1f}s for it to "
        f"catch up with the sources)"
    )
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
    sys.exit(EXIT_TERMINAL if report.differences else EXIT_OK)


@click.command()
@click.option("--limit", default=3, show_default=True, help="Rows shown per view table.")
@reports_failures
def views(limit: int) -> None:
    """Show the published view tables: rows, a sample, and the watermark they carry."""
    from warehouse.publish import current_publication
    from warehouse.publish.configuration import PublishSettings

    settings = PublishSettings()
    publication = current_publication(settings.published)
    if publication is None:
        click.secho(
            "nothing published yet: run `mirador build` (after `mirador load --once`) or `mirador run`",
            fg="yellow",
            err=True,
        )
        sys.exit(EXIT_TERMINAL)
    click.echo(
        f"publication {publication.build_id}, built {publication.built_at}, batch {publication.through_batch} "
        f"(data tests passed through batch {publication.tested_through_batch})"
    )
    for service, mark in sorted(publication.watermark.items()):
        click.echo(
            f"  {service:<10} includes source commits up to {mark.get('commit_ts') or '-'} "
            f"(LSN {mark.get('lsn') or '-'})"
        )
    with duckdb.connect(str(publication.path(settings.published)), read_only=True) as conn:
        for table in publication.tables:
            count = conn.execute(f'select count(*) from "{table}"').fetchall()[0][0]
            click.echo(f"\n{table}: {count:,} rows")
            relation = conn.sql(f'select * from "{table}" limit {int(limit)}')
            click.echo(str(relation))


@click.command()
@click.argument("query", required=False)
@click.option(
    "--published",
    is_flag=True,
    help="Query the current publication of the view tables (never waits) instead of the working file.",
)
@click.option("--csv", "as_csv", is_flag=True, help="Print the result as CSV with a header line.")
@click.option("--timeout", default=900.0, show_default=True, help="Seconds to wait for the working file.")
@reports_failures
def sql(query: str | None, published: bool, as_csv: bool, timeout: float) -> None:
    """Run QUERY (or SQL read from standard input) read-only against the warehouse and print the result.

    It takes the warehouse lock like any process opening the file, so `mirador run` hands the file over
    after its cycle and waits while the query runs (ADR 19). The working file holds `raw`, `staging`,
    `marts` and `loader`; while the pipeline holds it, this waits for its turn (exit 3 after --timeout).
    Exit 1 if DuckDB refuses the query.
    """
    from warehouse.lock import WarehouseLock
    from warehouse.publish import current_publication
    from warehouse.publish.configuration import PublishSettings

    text = query if query is not None else sys.stdin.read()
    if not text.strip():
        raise click.UsageError("give a query, as an argument or on standard input")
    settings = PublishSettings()
    if published:
        publication = current_publication(settings.published)
        if publication is None:
            raise TerminalError(f"nothing published yet in {settings.published}: run `mirador build` or `mirador run`")
        _query(str(publication.path(settings.published)), text, as_csv)
        return
    if not settings.warehouse.exists():
        raise TerminalError(f"no warehouse at {settings.warehouse} yet: run `mirador load --once` first")
    with WarehouseLock(settings.warehouse, "mirador sql", timeout=timeout):
        _query(str(settings.warehouse), text, as_csv)


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
        raise TerminalError(str(err)) from err
