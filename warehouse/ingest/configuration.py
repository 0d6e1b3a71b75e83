"""Settings of the loader: which topics feed the warehouse, how big a batch gets, how long to wait."""

from __future__ import annotations

from pydantic import Field, model_validator

from cdc.config import SERVICES
from warehouse.configuration import WarehouseSettings


def default_topics(services: tuple[str, ...] = SERVICES) -> list[str]:
    """Every change, transaction and heartbeat topic of the services, as librdkafka-style regexes."""
    names = "|".join(services)
    return [rf"^({names})\..+", rf"^__debezium-heartbeat\.({names})$"]


class LoaderSettings(WarehouseSettings):
    """The loader (`mirador load`, and the loader thread of `mirador run`)."""

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

    loader_refuse_types: str = ""
    """Comma list of Connect types or logical names (`float64,io.debezium.time.MicroTimestamp`): every
    message whose row has a field of one goes to the dead letters, naming it. Empty: refuse none."""

    @model_validator(mode="after")
    def _topics_present(self) -> LoaderSettings:
        if not self.loader_topics:
            raise ValueError("MIRADOR_LOADER_TOPICS is empty; name at least one topic or regex")
        return self

    @property
    def refused_types(self) -> frozenset[str]:
        return frozenset(name.strip() for name in self.loader_refuse_types.split(",") if name.strip())

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"
