"""Settings of the build: the dbt project, and the replay of the SQL dbt recorded for it."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from mirador.home import PROJECT_ROOT
from warehouse.configuration import WarehouseSettings


class BuildSettings(WarehouseSettings):
    """The build step (`mirador build`, and the builds of `mirador run`)."""

    dbt_project_dir: Path = PROJECT_ROOT / "dbt_project"
    """The dbt project of the view tables."""

    run_replay: bool = True
    """In `mirador run`, execute the SQL dbt ran for a model or a data test, once two dbt runs of it
    agree, instead of invoking dbt for it every cycle (warehouse/build/recordings.py). A project whose
    SQL would differ from run to run is refused (warehouse/build/determinism.py)."""

    run_replay_recheck: float = Field(3600.0, gt=0)
    """In `mirador run`, seconds a replayed node's recording holds before dbt runs it again to check it
    (against what no check of the project sees: dbt's own macros, a changed environment). Each recheck is
    a cycle through dbt, seconds instead of a fraction of one, that every change arriving meanwhile
    waits for (ADR 16)."""

    run_replay_threads: int = Field(2, ge=1)
    """Models a replay executes at once, each as soon as its parents are done (dbt's `threads`)."""
