"""`mirador load`: Kafka change topics into the warehouse's raw changelog tables.

Exit codes: 0 done (drained with --once, or stopped by SIGTERM/SIGINT with --follow after the batch
in hand landed); 1 terminal failure (configuration, a broken file, a bug: the message names the
stage and offsets); 2 usage error; 3 transient failure (Kafka unreachable, the warehouse file held
by another process past MIRADOR_LOADER_LOCK_TIMEOUT): run again later; 4 new dead letters were
written and --fail-on-dead-letters was given.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

import click
from pydantic import ValidationError

from warehouse.configuration import LoaderSettings
from warehouse.exceptions import LoaderError
from warehouse.load import Loader
from warehouse.progress import Progress

EXIT_OK, EXIT_TERMINAL, EXIT_TRANSIENT, EXIT_DEAD_LETTERS = 0, 1, 3, 4

log = logging.getLogger(__name__)


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: object) -> None:
        if stop.is_set():
            log.warning("second %s: exiting without waiting for the batch (positions stay consistent)",
                        signal.Signals(signum).name)
            os._exit(128 + signum)
        log.info("%s: finishing the current batch, then exiting", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@click.command()
@click.option("--once", "mode", flag_value="once", help="Drain what is in Kafka now, then exit (for schedulers).")
@click.option("--follow", "mode", flag_value="follow", help="Keep loading until SIGTERM or SIGINT.")
@click.option("--fail-on-dead-letters", is_flag=True, help="Exit 4 if this run wrote dead letters.")
@click.option("--progress/--no-progress", "show_progress", default=None,
              help="Live progress line (default: on when stderr is a terminal).")
def load(mode: str | None, fail_on_dead_letters: bool, show_progress: bool | None) -> None:
    """Load Debezium change events from Kafka into DuckDB (`raw.<service>__<table>`), exactly once.

    Exit codes: 0 done; 1 terminal failure; 2 usage; 3 transient failure, run again later;
    4 dead letters written (with --fail-on-dead-letters).
    """
    if mode is None:
        raise click.UsageError("say --once (drain and exit) or --follow (run until SIGTERM)")
    try:
        settings = LoaderSettings()
    except ValidationError as err:
        click.secho(f"error: invalid loader configuration: {err}", fg="red", err=True)
        sys.exit(EXIT_TERMINAL)
    stop = threading.Event()
    _stop_on_signals(stop)
    loader = Loader(settings, follow=mode == "follow", progress=Progress(interactive=show_progress), stop=stop)
    try:
        report = loader.run()
    except LoaderError as err:
        click.secho(f"error: {err}", fg="red", err=True)
        sys.exit(EXIT_TRANSIENT if err.transient else EXIT_TERMINAL)
    click.echo(f"loaded {report.events:,} events from {report.messages:,} messages in {report.batches} batches "
               f"({report.rate:,.0f} events/s) into {settings.warehouse}; dead letters {report.dead_letters:,}, "
               f"lag {report.lag:,}", err=True)
    if fail_on_dead_letters and report.dead_letters:
        sys.exit(EXIT_DEAD_LETTERS)
