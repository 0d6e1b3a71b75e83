"""Errors of the CDC stack: each says what went wrong and how to fix it."""

from __future__ import annotations


class StackError(Exception):
    """A terminal problem starting or talking to the stack; retrying as-is will not help."""

    def __init__(self, problem: str, fix: str | None = None, log: str | None = None) -> None:
        self.problem, self.fix, self.log = problem, fix, log
        super().__init__(self.render())

    def render(self) -> str:
        text = self.problem
        if self.fix:
            text += f"\n  fix: {self.fix}"
        if self.log:
            text += f"\n  last lines of the log:\n{self.log}"
        return text


class UnknownTarget(StackError):
    """The command names a service or table that does not exist (a usage error)."""


class Unreachable(StackError):
    """A part of the stack does not answer now; the same command may work later."""
