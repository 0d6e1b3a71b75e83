"""Where mirador keeps local state: data dirs, logs, jars and warehouse files."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def default_home() -> Path:
    """`MIRADOR_HOME`, else `.mirador/` in the checkout, else `.mirador/` in the working directory."""
    if env := os.environ.get("MIRADOR_HOME"):
        return Path(env).expanduser().resolve()
    root = PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").exists() else Path.cwd()
    return root / ".mirador"
