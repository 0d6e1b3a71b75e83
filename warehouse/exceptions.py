"""Loader errors: transient ones are worth a retry, terminal ones stop and say why.

A failing stage is wrapped in `StageFailed` with the batch and the offsets it was working on, so a
log line or an exit message tells the operator where to look. A bad message is not an error of the
loader at all: `PoisonMessage` sends it to the dead letters and the batch goes on.
"""

from __future__ import annotations


class LoaderError(Exception):
    """Base of the loader's errors; `transient` says whether running again may succeed."""

    transient = False


class TransientError(LoaderError):
    """Kafka unreachable, the warehouse file held too long: the same run later may succeed."""

    transient = True


class TerminalError(LoaderError):
    """A broken configuration, file or invariant: retrying as-is will not help."""


class StageFailed(LoaderError):
    """A stage (consume, decode, land) failed on a batch; keeps the cause and where it happened."""

    def __init__(self, stage: str, batch: int | None, offsets: dict[str, str], cause: BaseException) -> None:
        self.stage, self.batch, self.offsets, self.cause = stage, batch, offsets, cause
        self.transient = getattr(cause, "transient", False)
        where = ", ".join(f"{tp} {span}" for tp, span in sorted(offsets.items())[:5])
        more = f" (+{len(offsets) - 5} more)" if len(offsets) > 5 else ""
        batch_text = f" batch {batch}" if batch is not None else ""
        super().__init__(f"{stage} failed on{batch_text} [{where or 'no messages'}{more}]: {cause}")


class PoisonMessage(Exception):
    """One message cannot be loaded (not JSON, not an envelope, unknown type): it goes to the dead letters."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class IncompatibleSchema(PoisonMessage):
    """A source column changed to a type its raw column cannot hold without losing values."""
