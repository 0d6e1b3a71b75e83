"""Settings of the read API: `MIRADOR_API_*`, plus the shared `MIRADOR_HOME`, `MIRADOR_ENV` and the
publication directory the warehouse writes (`MIRADOR_PUBLISH_DIR`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mirador.home import default_home


def _shared(name: str) -> dict:
    return {"validation_alias": f"MIRADOR_{name.upper()}"}


class ApiSettings(BaseSettings):
    """Environment variables `MIRADOR_API_*` (or a `.env` file) configure `mirador serve`."""

    model_config = SettingsConfigDict(env_prefix="MIRADOR_API_", env_file=".env", extra="ignore", populate_by_name=True)

    home: Path = Field(default_factory=default_home, **_shared("home"))
    """State directory (shared with the pipeline)."""

    env: Literal["development", "production"] = Field("development", **_shared("env"))
    """`production` refuses to start without `tokens` unless `public` says the API is open to all."""

    publish_dir: Path | None = Field(None, **_shared("publish_dir"))
    """Where the warehouse publishes (`current.json` and its files); default `<home>/warehouse/published`."""

    warehouse_path: Path | None = Field(None, **_shared("warehouse_path"))
    """The pipeline's working file, only to find its default publication directory beside it."""

    serving_path: Path | None = None
    """The serving copy the workers read (SQLite); default `<home>/serving/views.sqlite`."""

    host: str = "127.0.0.1"
    port: int = Field(8100, ge=0, le=65535)
    workers: int = Field(2, ge=1, le=64)
    """Worker processes answering requests; one more process keeps the serving copy current."""

    tokens: list[SecretStr] = []
    """Bearer tokens a request may carry (`Authorization: Bearer <token>`); none: reads are open."""

    public: bool = False
    """In production without tokens: the API is meant to be open to anyone."""

    cors_origins: list[str] = ["http://127.0.0.1:8100", "http://localhost:8100"]
    """Origins a browser may read from (`*` for any)."""

    cache_control: str = "no-cache"
    """`Cache-Control` of view responses (`no-cache`: caches revalidate with the ETag each time)."""

    wait_default: float = Field(5.0, ge=0)
    """Seconds a read-your-writes request waits for its positions when it names no `wait`."""

    wait_max: float = Field(30.0, ge=0, le=300)
    """The most seconds any request may wait for its positions."""

    changes_keep: int = Field(600, ge=1)
    """Publications whose changed keys are kept for `Last-Event-ID` resumes of the live stream."""

    ready_max_age: float = Field(300.0, gt=0)
    """`/readyz` fails when the newest publication is older than this many seconds."""

    poll_seconds: float = Field(0.01, gt=0)
    """How often a worker, and the refresher, look for a new publication."""

    @model_validator(mode="after")
    def _refuse_open_production(self) -> ApiSettings:
        if self.env == "production" and not self.tokens and not self.public:
            raise ValueError(
                "MIRADOR_ENV=production needs MIRADOR_API_TOKENS (a JSON list of bearer tokens), "
                "or MIRADOR_API_PUBLIC=true to serve the views to anyone"
            )
        return self

    @property
    def published(self) -> Path:
        if self.publish_dir:
            return self.publish_dir
        return (self.warehouse_path or self.home / "warehouse" / "mirador.duckdb").parent / "published"

    @property
    def serving(self) -> Path:
        return self.serving_path or self.home / "serving" / "views.sqlite"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"
