"""Datasette's app for `uvicorn --workers N --factory datasette_workers:create` (`datasette serve`
runs one process). Imported by the peers' venv, not mirador's: the file named by BENCH_DATASETTE_DB,
immutable, as `datasette serve --immutable` serves it."""

import os

from datasette.app import Datasette


def create():
    path = os.environ["BENCH_DATASETTE_DB"]
    return Datasette(immutables=[path]).app()
