"""`mirador` as the tests run it: the console script, a loader's environment, and `mirador verify`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from mirador.home import PROJECT_ROOT
from warehouse.ingest.configuration import LoaderSettings

BIN = Path(sys.executable).parent
"""The virtualenv's scripts: `mirador` and `dbt`."""
MIRADOR = BIN / "mirador"


def loader_env(settings: LoaderSettings, topics: list[str], **extra: str) -> dict[str, str]:
    """Environment for a `mirador load` subprocess on these topics and this scratch warehouse."""
    return (
        os.environ
        | {
            "MIRADOR_WAREHOUSE_PATH": str(settings.warehouse),
            "MIRADOR_LOADER_TOPICS": json.dumps(topics),
            "MIRADOR_LOADER_GROUP": f"mirador-loader-test-{uuid.uuid4().hex[:8]}",
        }
        | extra
    )


def verify(env: dict) -> None:
    """`mirador verify` in `env` passes: every view equals what the services' databases hold."""
    check = subprocess.run(
        [MIRADOR, "verify", "--timeout", "300"], env=env, capture_output=True, text=True, timeout=400, cwd=PROJECT_ROOT
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "orders_with_invoices" in check.stdout and "differences" not in check.stdout
