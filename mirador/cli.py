"""The `mirador` console script: one sub-command group per part of the pipeline."""

from __future__ import annotations

import importlib
import logging

import click

COMMANDS = {
    "stack": "cdc.cli:stack",
    "resnapshot": "cdc.resnapshot_cli:resnapshot",
    "services": "services.cli:services",
    "simulate": "traffic.cli:simulate",
    "load": "warehouse.cli:load",
    "deadletters": "warehouse.cli:deadletters",
    "build": "warehouse.cli:build",
    "run": "warehouse.cli:run",
    "verify": "warehouse.cli:verify",
    "views": "warehouse.cli:views",
    "sql": "warehouse.cli:sql",
    "serve": "api.cli:serve",
    "demo": "mirador.demo:demo",
    "status": "mirador.status.cli:status",
}


class LazyGroup(click.Group):
    """Imports a sub-command's module only when it is asked for: `mirador load` (a scheduled job,
    memory-bounded) does not carry the stack's, the services' or dbt's modules."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attribute)


@click.group(cls=LazyGroup)
@click.version_option(package_name="mirador")
@click.option("-v", "--verbose", is_flag=True, help="Log debug lines.")
def main(verbose: bool) -> None:
    """mirador: a CQRS read side for microservices, built from change data capture."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)


if __name__ == "__main__":
    main()
