"""Settings of one write service: `MIRADOR_<SERVICE>_*` for its own keys, `MIRADOR_*` for shared ones."""

from __future__ import annotations

from typing import ClassVar, Literal

from psycopg.conninfo import make_conninfo
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "mirador-dev"
"""The documented development password and bearer token; refused when `MIRADOR_ENV=production`."""


def _shared(name: str) -> dict:
    """A key all services (and the CDC stack) read under the plain `MIRADOR_` prefix."""
    return {"validation_alias": f"MIRADOR_{name.upper()}"}


class ServiceSettings(BaseSettings):
    """Base of each service's settings class; a subclass names the service, its prefix and port."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    service: ClassVar[str]

    env: Literal["development", "production"] = Field("development", **_shared("env"))
    """`production` refuses the development token and database password."""

    pg_host: str = Field("127.0.0.1", **_shared("pg_host"))
    """Postgres host of the default DSN (the same key the CDC stack reads)."""

    pg_port: int = Field(15432, **_shared("pg_port"))
    """Postgres port of the default DSN."""

    pg_service_password: SecretStr = Field(SecretStr(DEV_SECRET), **_shared("pg_service_password"))
    """Password of the service's owner role, used by the default DSN."""

    dsn: SecretStr | None = None
    """Full DSN of the service's database; by default its own database as its owner role."""

    token: SecretStr = SecretStr(DEV_SECRET)
    """Bearer token every command must carry (`Authorization: Bearer <token>`)."""

    cors_origins: list[str] = Field(["http://127.0.0.1:8100", "http://localhost:8100"], **_shared("cors_origins"))
    """Origins whose pages may send commands from a browser (a JSON list; the read API's page by default)."""

    host: str = "127.0.0.1"
    """Address `mirador services up` binds the service to."""

    port: int = Field(0, ge=0, le=65535)
    """HTTP port; each service sets its own default (8101-8104)."""

    workers: int = Field(1, ge=1, le=64)
    """uvicorn worker processes started by `mirador services up`."""

    pool_min_size: int = Field(2, ge=1)
    """Connections each worker keeps open."""

    pool_max_size: int = Field(16, ge=1)
    """Most connections each worker opens; mind Postgres's max_connections across workers."""

    connect_timeout: float = Field(10.0, gt=0)
    """Seconds to wait for the database at start-up before giving up."""

    pool_timeout: float = Field(5.0, gt=0)
    """Seconds a command waits for a free database connection before it is answered 503 (with the database
    down, well before a client gives up)."""

    idempotency_ttl_hours: int = Field(24, ge=1)
    """Idempotency keys older than this are forgotten at start-up; a later retry then runs again."""

    @model_validator(mode="after")
    def _refuse_dev_secrets_in_production(self) -> ServiceSettings:
        if self.env != "production":
            return self
        prefix = self.model_config.get("env_prefix", "MIRADOR_")
        if self.token.get_secret_value() == DEV_SECRET:
            raise ValueError(f"{prefix}TOKEN is the development default; set a real token when MIRADOR_ENV=production")
        if self.dsn is None and self.pg_service_password.get_secret_value() == DEV_SECRET:
            raise ValueError(
                "MIRADOR_PG_SERVICE_PASSWORD is the development default; set a real password "
                f"or {prefix}DSN when MIRADOR_ENV=production"
            )
        return self

    @property
    def database_dsn(self) -> str:
        if self.dsn is not None:
            return self.dsn.get_secret_value()
        return make_conninfo(
            host=self.pg_host,
            port=self.pg_port,
            dbname=self.service,
            user=self.service,
            password=self.pg_service_password.get_secret_value(),
            connect_timeout=max(1, round(self.connect_timeout)),
            application_name=f"mirador-{self.service}",
        )

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"
