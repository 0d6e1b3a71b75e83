"""Settings of `mirador status`: the thresholds of its verdict, and how long it waits for each server."""

from __future__ import annotations

from pydantic import Field

from warehouse.ingest.configuration import LoaderSettings
from warehouse.publish.configuration import PublishSettings


class StatusSettings(LoaderSettings, PublishSettings):
    """`mirador status` (the loader's topics and group, the publication directory, and these)."""

    status_max_watermark_age: float = Field(60.0, gt=0)
    """Stale once the publication's watermark (the newest source commit every service's views include)
    is older than this many seconds. Sources' heartbeats (every 5 s) move it while nothing changes; with
    `mirador load --once` and `mirador build` from a scheduler, set it above the schedule's period."""

    status_max_publication_age: float = Field(60.0, gt=0)
    """Stale once the current publication (or its watermark refresh) is older than this many seconds."""

    status_max_lag_seconds: float = Field(30.0, gt=0)
    """Stale once the oldest message the loader has not loaded waits in Kafka longer than this."""

    status_max_slot_bytes: int = Field(1024**3, gt=0)
    """Stale once a replication slot retains more WAL than this many bytes (Debezium is behind)."""

    status_max_dead_letters: int | None = Field(None, ge=0)
    """Broken once there are more dead letters than this (unset: they are shown, not judged)."""

    status_timeout: float = Field(2.0, gt=0)
    """Seconds each server (Postgres, Kafka Connect, Kafka) may take to answer before it counts as down."""
