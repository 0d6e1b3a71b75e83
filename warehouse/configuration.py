"""Settings of the loader: where the warehouse file lives, which topics feed it, how big a batch gets."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cdc.config import SERVICES
from mirador.home import default_home


def default_topics(services: tuple[str, ...] = SERVICES) -> list[str]:
    """Every change, transaction and heartbeat topic of the services, as librdkafka-style regexes."""
    names = "|".join(services)
    return [rf"^({names})\..+", rf"^__debezium-heartbeat\.({names})$"]


class LoaderSettings(BaseSettings):
    """Environment variables `MIRADOR_*` (or a `.env` file) configure the loader."""

    model_config = SettingsConfigDict(env_prefix="MIRADOR_", env_file=".env", extra="ignore")

    home: Path = Field(default_factory=default_home)
    """State directory; the warehouse file defaults to `<home>/warehouse/mirador.duckdb`."""

    warehouse_path: Path | None = None
    """The working DuckDB file the loader writes and the build step reads."""

    kafka_bootstrap: str | None = None
    """Bootstrap servers; defaults to the native broker on 127.0.0.1:`kafka_port`."""

    kafka_port: int = 19092
    """Broker port of the native stack (same default as the stack's settings)."""

    loader_topics: list[str] = Field(default_factory=default_topics)
    """Topics to load: exact names, or regexes starting with `^`. JSON list in the environment."""

    loader_group: str = "mirador-loader"
    """Kafka consumer group the loader commits to, for lag monitoring only; positions live in DuckDB."""

    loader_batch_messages: int = Field(100_000, gt=0)
    """A batch closes at this many messages..."""

    loader_batch_bytes: int = Field(32 * 1024 * 1024, gt=0)
    """... or when its decoded Arrow columns reach this many bytes (bounds memory whatever the backlog) ..."""

    loader_batch_seconds: float = Field(2.0, gt=0)
    """... or after this many seconds, whichever comes first."""

    loader_fetch_kbytes: int = Field(16 * 1024, gt=0)
    """Most kilobytes librdkafka prefetches ahead of the loader (`queued.max.messages.kbytes`)."""

    loader_discover_seconds: float = Field(10.0, gt=0)
    """How often `--follow` looks for new topics matching `loader_topics`."""

    loader_lock_timeout: float = Field(900.0, ge=0)
    """Seconds to wait for another process holding the warehouse file before giving up."""

    loader_duckdb_memory: str = "128MB"
    """DuckDB `memory_limit` while a batch is written."""

    loader_duckdb_threads: int = Field(2, gt=0)
    """DuckDB worker threads while a batch is written."""

    loader_kafka_timeout: float = Field(30.0, gt=0)
    """Seconds Kafka may stay unreachable before the loader gives up (exit code 3)."""

    @model_validator(mode="after")
    def _topics_present(self) -> LoaderSettings:
        if not self.loader_topics:
            raise ValueError("MIRADOR_LOADER_TOPICS is empty; name at least one topic or regex")
        return self

    @property
    def warehouse(self) -> Path:
        return self.warehouse_path or self.home / "warehouse" / "mirador.duckdb"

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"


class PipelineSettings(LoaderSettings):
    """The pipeline (`mirador build`, `mirador run`): the loader's settings plus build and publication."""

    dbt_project_dir: Path = Field(default_factory=lambda: Path(__file__).resolve().parents[1] / "dbt_project")
    """The dbt project of the view tables."""

    publish_dir: Path | None = None
    """Where published snapshots of the view tables go; defaults to `<home>/warehouse/published`."""

    publish_keep: int = Field(3, ge=1)
    """Published snapshots kept besides the current one (readers may still be on older ones). Once
    this many are kept, each publication is the oldest, brought up to date in place (ADR 17)."""

    publish_rewrite_every: int = Field(50, ge=1)
    """A publication is an earlier one plus the rows that changed since; once a file has been written
    this many times, the marts are copied whole instead (which also reclaims the space of deleted
    rows). 1: always whole."""

    run_interval: float = Field(1.0, gt=0)
    """In `mirador run`, a build starts as soon as a batch lands; with none, the watermark is
    refreshed every this many seconds."""

    run_batch_seconds: float = Field(0.2, gt=0)
    """In `mirador run`, the loader closes a batch this soon, so a change is built within about a second."""

    run_test_interval: float = Field(30.0, ge=0)
    """In `mirador run`, seconds between runs of the data tests over what was published since the last
    ones (0: after every build); each publication says up to which batch they passed."""

    run_replay: bool = True
    """In `mirador run`, execute the SQL dbt ran for a model or a data test, once two dbt runs of it
    agree, instead of invoking dbt for it every cycle (warehouse/plan.py)."""

    run_replay_recheck: float = Field(3600.0, gt=0)
    """In `mirador run`, seconds a replayed node's recording holds before dbt runs it again to check it
    (SQL rendered from data or the date changes seldom, but can). Each recheck is a cycle through dbt,
    seconds instead of a fraction of one, that every change arriving meanwhile waits for (ADR 16)."""

    run_replay_threads: int = Field(2, ge=1)
    """Models a replay executes at once, each as soon as its parents are done (dbt's `threads`)."""

    run_duckdb_threads: int = Field(1, gt=0)
    """DuckDB threads of `mirador run`'s instance. One: its statements are small and many (landing,
    replay, publication), and with the cores busy, a statement that waits for a second DuckDB thread
    to be scheduled takes several times longer (ADR 10). Its replay still runs models side by side."""

    run_duckdb_memory: str = "1GB"
    """DuckDB `memory_limit` of the working file's instance while `mirador build` or `mirador run` holds it."""

    @property
    def published(self) -> Path:
        return self.publish_dir or self.warehouse.parent / "published"
