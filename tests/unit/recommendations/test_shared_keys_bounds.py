"""The Gemini keys' shared states: no Redis key of theirs outlives a day, whatever a report asks."""

from __future__ import annotations

import math

import pytest

from agents.recommendations.shared_keys import MAX_STATE_TTL, state_ms


@pytest.mark.parametrize(
    ("seconds", "ms"),
    [(1.5, 1500), (0.0, 0), (-4.0, 0), (1e9, 86_400_000), (math.inf, 86_400_000), (math.nan, 86_400_000)],
)
def test_a_gemini_keys_state_lives_a_day_at_most(seconds: float, ms: int) -> None:
    assert state_ms(seconds) == ms
    assert MAX_STATE_TTL == 86400.0
