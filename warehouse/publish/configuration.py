"""Settings of publication: where the snapshots readers open go, how many are kept."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from warehouse.configuration import WarehouseSettings


class PublishSettings(WarehouseSettings):
    """Publication, after each build of `mirador build` or `mirador run`."""

    publish_dir: Path | None = None
    """Where published snapshots of the view tables go; defaults to `<home>/warehouse/published`."""

    publish_keep: int = Field(3, ge=1)
    """Published snapshots kept besides the current one (readers may still be on older ones). Once
    this many are kept, each publication is the oldest, brought up to date in place (ADR 17)."""

    publish_rewrite_every: int = Field(50, ge=1)
    """A publication is an earlier one plus the rows that changed since; once a file has been written
    this many times, the marts are copied whole instead (which also reclaims the space of deleted
    rows). 1: always whole."""

    @property
    def published(self) -> Path:
        return self.publish_dir or self.warehouse.parent / "published"
