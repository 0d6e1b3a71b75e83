"""Settings of the CDC stack: where its parts live, how they are reached, what they may use."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mirador.home import default_home

SERVICES = ("customers", "orders", "invoices", "inventory")
"""One database, owner role and connector per write service."""

DEV_PASSWORD = "mirador-dev"


class StackSettings(BaseSettings):
    """Environment variables `MIRADOR_*` (or a `.env` file) configure the stack."""

    model_config = SettingsConfigDict(env_prefix="MIRADOR_", env_file=".env", extra="ignore")

    env: Literal["development", "production"] = "development"
    """`production` refuses the documented development passwords."""

    home: Path = Field(default_factory=default_home)
    """State directory: data dirs, logs, pid files, jars."""

    jars_dir: Path | None = None
    """Where Maven puts the Kafka and Debezium jars; defaults to `<home>/jars`."""

    # -- PostgreSQL ------------------------------------------------------------------------------
    pg_dsn: str | None = None
    """Bring-your-own Postgres: a superuser DSN. When set, no cluster is started."""

    pg_bin_dir: Path | None = None
    """PostgreSQL 15 server binaries (initdb, pg_ctl); found under /usr/lib/postgresql when unset."""

    pg_data_dir: Path | None = None
    """Cluster data directory; defaults to `<home>/postgres/data`."""

    pg_host: str = "127.0.0.1"
    """Address the native cluster listens on, and the host connectors use to reach it."""

    pg_port: int = 15432
    """Port of the native cluster; away from a system Postgres on 5432."""

    pg_superuser_password: SecretStr = SecretStr(DEV_PASSWORD)
    """Password of the `postgres` superuser of the native cluster."""

    pg_service_password: SecretStr = SecretStr(DEV_PASSWORD)
    """Password of each service's owner role (`customers`, `orders`, ...)."""

    cdc_user: str = "mirador_cdc"
    """The least-privileged role Debezium logs in as (LOGIN REPLICATION, SELECT on captured tables)."""

    cdc_password: SecretStr = SecretStr(DEV_PASSWORD)
    """Password of the Debezium role."""

    pg_max_slot_wal_keep_size: str = "2GB"
    """Cap on WAL a lagging replication slot may retain before Postgres invalidates it."""

    # -- Kafka -----------------------------------------------------------------------------------
    kafka_bootstrap: str | None = None
    """Bring-your-own Kafka: bootstrap servers. When set, no broker is started."""

    kafka_port: int = 19092
    """Broker listener of the native single-node KRaft cluster."""

    kafka_controller_port: int = 19093
    """KRaft controller listener of the native cluster."""

    kafka_heap: str = "512m"
    """JVM heap of the broker; small, for a 2-core shared machine."""

    # -- Kafka Connect ---------------------------------------------------------------------------
    connect_url: str | None = None
    """Bring-your-own Kafka Connect REST URL. When set, no worker is started."""

    connect_port: int = 18083
    """REST port of the first native Connect worker; worker n listens on this port + n - 1."""

    connect_workers: int = Field(default=1, ge=1, le=9)
    """Native Connect workers in one distributed group; connectors and tasks rebalance across them."""

    connect_group: str = Field(default="mirador-connect", pattern=r"^[A-Za-z0-9._-]+$")
    """Group id of the native workers; their internal topics are `<group>-configs`, `-offsets`, `-status`."""

    connect_heap: str = "768m"
    """JVM heap of each Connect worker."""

    connect_pg_host: str | None = None
    """Postgres host as the Connect worker sees it; defaults to the cluster's host."""

    connect_pg_port: int | None = None
    """Postgres port as the Connect worker sees it; defaults to the cluster's port."""

    # -- Tools -----------------------------------------------------------------------------------
    java: str = "java"
    """Java 17+ executable for Kafka and Connect."""

    maven: str = "mvn"
    """Maven executable that resolves the jars from Maven Central."""

    maven_args: str = ""
    """Extra Maven arguments, e.g. `-s mirror-settings.xml` behind a repository mirror."""

    startup_timeout: float = 120.0
    """Seconds each component may take to become healthy."""

    @model_validator(mode="after")
    def _refuse_dev_passwords_in_production(self) -> StackSettings:
        if self.env == "production":
            for key in ("pg_superuser_password", "pg_service_password", "cdc_password"):
                if getattr(self, key).get_secret_value() == DEV_PASSWORD:
                    raise ValueError(
                        f"MIRADOR_{key.upper()} is the development default; set a real secret "
                        "when MIRADOR_ENV=production"
                    )
        return self

    # -- Derived locations -------------------------------------------------------------------------
    @property
    def jars(self) -> Path:
        return self.jars_dir or self.home / "jars"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def run(self) -> Path:
        return self.home / "run"

    @property
    def kafka_bootstrap_servers(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def connect_rest_url(self) -> str:
        return (self.connect_url or f"http://127.0.0.1:{self.connect_port}").rstrip("/")
