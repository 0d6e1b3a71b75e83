"""The `mirador` console script: one sub-command group per part of the pipeline."""

from __future__ import annotations

import logging

import click

from cdc.cli import stack
from services.cli import services, simulate
from warehouse.cli import load
from warehouse.pipeline_cli import build, run, verify, views


@click.group()
@click.version_option(package_name="mirador")
@click.option("-v", "--verbose", is_flag=True, help="Log debug lines.")
def main(verbose: bool) -> None:
    """mirador: a CQRS read side for microservices, built from change data capture."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)


main.add_command(stack)
main.add_command(load)
main.add_command(build)
main.add_command(run)
main.add_command(verify)
main.add_command(views)
main.add_command(services)
main.add_command(simulate)
