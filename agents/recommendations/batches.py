"""Per-batch counts: a pure fold of ``BatchProgress`` events into the batch's table entry.

Tokens are summed from every user outcome that carries them, even one not counted as a user
(delivered twice, or past the total): each was a Gemini answer, and billed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from typing import Any

from agents.recommendations.usage import TokenPrices
from models.records import USER_OUTCOMES, BatchProgress, ProgressKind

__all__ = ["BatchCounts", "BatchStatus", "add_tokens", "apply_progress", "progress_step"]


class BatchStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    STOPPED = "stopped"  # every Gemini key exhausted


@dataclass(frozen=True, slots=True)
class BatchCounts:
    """One batch's counts: the value of the ``recommendation-batches`` table (stored as a dict)."""

    batch_id: str
    status: BatchStatus = BatchStatus.RUNNING
    day: str | None = None
    trigger: str | None = None
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    stopped_reason: str | None = None
    updated_at: float | None = None
    resent: int = 0  # rounds of resending a stalled batch's missing users
    prompt_tokens: int = 0  # Gemini tokens of the batch's answers
    output_tokens: int = 0
    total_tokens: int = 0

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.skipped

    def cost(self, prices: TokenPrices) -> float | None:
        """The estimated cost of the batch's tokens at ``prices`` (None: no price set)."""
        return prices.cost(self.prompt_tokens, self.output_tokens)

    def stalled(self, now: float, after: float) -> bool:
        """Running, users missing, and nothing heard for ``after`` seconds."""
        if self.finished_at is not None or self.started_at is None or self.done >= self.total:
            return False
        return now - (self.updated_at or self.started_at) >= after

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BatchCounts:
        counts = cls(**{f.name: raw[f.name] for f in fields(cls) if f.name in raw})
        return replace(counts, status=BatchStatus(counts.status))


def progress_step(total: int) -> int:
    """Log progress every 10 % of a batch (at least every user for small ones)."""
    return max(1, total // 10)


def add_tokens(counts: BatchCounts, event: BatchProgress) -> BatchCounts:
    """``counts`` with the tokens ``event`` carries (none: unchanged)."""
    if not (event.prompt_tokens or event.output_tokens or event.total_tokens):
        return counts
    return replace(
        counts,
        prompt_tokens=counts.prompt_tokens + (event.prompt_tokens or 0),
        output_tokens=counts.output_tokens + (event.output_tokens or 0),
        total_tokens=counts.total_tokens + (event.total_tokens or 0),
    )


def apply_progress(counts: BatchCounts | None, event: BatchProgress) -> BatchCounts:
    """The batch's counts after ``event``.

    A batch finishes when every user is accounted for; a batch with no users
    finishes when it starts. Results past the total (a redelivered request after
    a crash) are not counted beyond ``total``.
    """
    new = counts or BatchCounts(event.batch_id)
    match event.kind:
        case ProgressKind.STARTED:
            new = replace(new, total=event.total, day=event.day, trigger=event.trigger, started_at=event.at)
        case kind if kind in USER_OUTCOMES:
            new = add_tokens(new, event)
            if new.finished_at is None or new.done < new.total:
                new = replace(new, **{kind.value: getattr(new, kind.value) + 1})
        case ProgressKind.STOPPED:
            new = replace(new, status=BatchStatus.STOPPED, stopped_reason=event.reason)
        case ProgressKind.RESENT:
            new = replace(new, resent=new.resent + 1)
        case ProgressKind.ABANDONED:
            new = replace(new, failed=new.failed + max(0, new.total - new.done), stopped_reason=event.reason)
        case _:
            raise ValueError(f"{event.kind} does not change a batch's counts")
    new = replace(new, updated_at=event.at)
    if new.started_at is not None and new.finished_at is None and new.done >= new.total:
        status = BatchStatus.FINISHED if new.status is BatchStatus.RUNNING else new.status
        new = replace(new, finished_at=event.at, status=status)
    return new
