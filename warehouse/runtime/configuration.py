"""Settings of the pipeline: every stage's, plus how `mirador run` paces its cycles."""

from __future__ import annotations

from pydantic import Field

from warehouse.build.configuration import BuildSettings
from warehouse.ingest.configuration import LoaderSettings
from warehouse.publish.configuration import PublishSettings


class PipelineSettings(LoaderSettings, BuildSettings, PublishSettings):
    """The pipeline (`mirador build`, `mirador run`, `mirador verify`): load, build and publish."""

    run_interval: float = Field(1.0, gt=0)
    """In `mirador run`, a build starts as soon as a batch lands; with none, the watermark is
    refreshed every this many seconds."""

    run_batch_seconds: float = Field(0.2, gt=0)
    """In `mirador run`, the loader closes a batch this soon, so a change is built within about a second."""

    run_test_interval: float = Field(30.0, ge=0)
    """In `mirador run`, seconds between runs of the data tests over what was published since the last
    ones (0: after every build); each publication says up to which batch they passed."""

    run_duckdb_threads: int = Field(1, gt=0)
    """DuckDB threads of `mirador run`'s instance. One: its statements are small and many (landing,
    replay, publication), and with the cores busy, a statement that waits for a second DuckDB thread
    to be scheduled takes several times longer (ADR 10). Its replay still runs models side by side."""

    run_duckdb_memory: str = "1GB"
    """DuckDB `memory_limit` of the working file's instance while `mirador build` or `mirador run` holds it."""
