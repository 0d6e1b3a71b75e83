"""A bad stack setting is one line naming the variable, and exit 1, before anything starts."""

from __future__ import annotations

import os
import subprocess

import pytest

from mirador.home import PROJECT_ROOT as ROOT
from tests.warehouse.commands import MIRADOR


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("MIRADOR_CONNECT_WORKERS", "0", "MIRADOR_CONNECT_WORKERS: Input should be greater than or equal to 1"),
        ("MIRADOR_CONNECT_WORKERS", "two", "MIRADOR_CONNECT_WORKERS: Input should be a valid integer"),
        ("MIRADOR_CONNECT_GROUP", "my group", "MIRADOR_CONNECT_GROUP: String should match pattern"),
    ],
)
def test_a_bad_connect_setting_is_one_line_and_exit_1(tmp_path, variable, value, says):
    env = {**os.environ, "MIRADOR_HOME": str(tmp_path), variable: value}
    for command in (["stack", "up"], ["stack", "status"], ["stack", "down"]):
        done = subprocess.run([MIRADOR, *command], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
        lines = done.stderr.splitlines()
        assert done.returncode == 1, done.stderr
        assert len(lines) == 1 and lines[0].startswith(f"error: invalid configuration: {says}"), done.stderr
        assert not list(tmp_path.iterdir()), "something was started or written"
