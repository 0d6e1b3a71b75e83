"""Errors of the build step."""

from __future__ import annotations

from warehouse.exceptions import TerminalError


class ProjectUnparsable(TerminalError):
    """dbt could not parse the project."""


class NondeterministicSQL(TerminalError):
    """A node the replay would record renders SQL that differs from run to run; names each node and why."""

    def __init__(self, findings: dict[str, list[str]]) -> None:
        self.findings = findings
        lines = [f"  {node}: {'; '.join(reasons)}" for node, reasons in sorted(findings.items())]
        super().__init__(
            "mirador run replays the SQL dbt recorded for each node, and these would render other SQL "
            "on another run:\n" + "\n".join(lines) + "\nrender them from the project alone, or set "
            "MIRADOR_RUN_REPLAY=false to leave every node to dbt"
        )
