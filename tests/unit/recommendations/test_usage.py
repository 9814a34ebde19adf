"""Token counts of Gemini answers, their sum per batch, and the estimated cost."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from google.genai import types

from agents.recommendations.batches import BatchCounts, apply_progress
from agents.recommendations.usage import TokenPrices, TokenUsage
from models.records import BatchProgress


def test_usage_is_read_from_the_sdk_type():
    metadata = types.GenerateContentResponseUsageMetadata(
        prompt_token_count=300, candidates_token_count=40, total_token_count=340
    )
    assert TokenUsage.of(metadata) == TokenUsage(prompt=300, output=40, total=340)


def test_thinking_tokens_count_as_output_and_missing_counts_as_zero():
    thinking = SimpleNamespace(
        prompt_token_count=300, candidates_token_count=40, thoughts_token_count=60, total_token_count=400
    )
    assert TokenUsage.of(thinking) == TokenUsage(300, 100, 400)
    assert TokenUsage.of(SimpleNamespace(prompt_token_count=10)) == TokenUsage(10, 0, 10)
    assert TokenUsage.of(None) is None
    assert TokenUsage(1, 2, 3) + TokenUsage(10, 20, 30) == TokenUsage(11, 22, 33)


def test_cost_needs_a_price():
    assert TokenPrices().cost(1_000_000, 1_000_000) is None
    assert TokenPrices(0.10, 0.40).cost(2_000_000, 500_000) == pytest.approx(0.40)
    assert TokenPrices(output_per_m=0.40).cost(2_000_000, 500_000) == pytest.approx(0.20)


def test_batch_sums_tokens_of_every_answer_even_past_its_total():
    def outcome(kind: str, at: float, tokens: int | None) -> BatchProgress:
        counts = {} if tokens is None else {"prompt_tokens": tokens, "output_tokens": 10, "total_tokens": tokens + 10}
        return BatchProgress(batch_id="b", kind=kind, at=at, user_id=1, **counts)

    counts = apply_progress(None, BatchProgress(batch_id="b", kind="started", at=0.0, total=2))
    counts = apply_progress(counts, outcome("succeeded", 1, 300))
    counts = apply_progress(counts, outcome("failed", 2, 250))  # an unusable answer: billed all the same
    counts = apply_progress(counts, outcome("succeeded", 3, 300))  # redelivered past the total
    counts = apply_progress(counts, outcome("skipped", 4, None))
    assert (counts.succeeded, counts.failed) == (1, 1)
    assert (counts.prompt_tokens, counts.output_tokens, counts.total_tokens) == (850, 30, 880)
    assert counts.cost(TokenPrices(0.10, 0.40)) == pytest.approx((850 * 0.10 + 30 * 0.40) / 1e6)
    assert counts.cost(TokenPrices()) is None


def test_counts_written_before_tokens_were_kept_read_as_zero():
    old = {"batch_id": "b", "status": "finished", "total": 1, "succeeded": 1}
    counts = BatchCounts.from_dict(old)
    assert (counts.prompt_tokens, counts.output_tokens, counts.total_tokens) == (0, 0, 0)
    assert BatchProgress.loads(b'{"batch_id": "b", "kind": "succeeded", "at": 1.0}').prompt_tokens is None
