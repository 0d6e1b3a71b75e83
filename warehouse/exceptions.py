"""The warehouse's errors: transient ones are worth a retry, terminal ones stop and say why.

A failing stage is wrapped in `StageFailed` with the batch and the offsets it was working on, so a
log line or an exit message tells the operator where to look. Each stage's own errors live beside
it (`ingest.exceptions`, `build.exceptions`, `runtime.exceptions`).
"""

from __future__ import annotations


class WarehouseError(Exception):
    """Base of the warehouse's errors; `transient` says whether running again may succeed."""

    transient = False


class TransientError(WarehouseError):
    """Kafka unreachable, the warehouse file held too long: the same run later may succeed."""

    transient = True


class TerminalError(WarehouseError):
    """A broken configuration, file or invariant: retrying as-is will not help."""


class StageFailed(WarehouseError):
    """A stage (consume, decode, land, build) failed; keeps the cause and where it happened."""

    def __init__(self, stage: str, batch: int | None, offsets: dict[str, str], cause: BaseException) -> None:
        self.stage, self.batch, self.offsets, self.cause = stage, batch, offsets, cause
        self.transient = getattr(cause, "transient", False)
        where = ", ".join(f"{tp} {span}" for tp, span in sorted(offsets.items())[:5])
        more = f" (+{len(offsets) - 5} more)" if len(offsets) > 5 else ""
        batch_text = f" batch {batch}" if batch is not None else ""
        super().__init__(f"{stage} failed on{batch_text} [{where or 'no messages'}{more}]: {cause}")
