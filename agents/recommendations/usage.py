"""What a Gemini answer cost: its token counts, and their estimated price (pure, no I/O).

Gemini bills input (prompt) tokens and output tokens, thinking included, at separate prices per
million. ``output`` here is the answer's tokens plus any thinking tokens; ``total`` is Gemini's own
``totalTokenCount``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents.recommendations.advice import Recommendation

__all__ = ["Answer", "TokenPrices", "TokenUsage"]

_MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens of one answer (or a sum of answers)."""

    prompt: int = 0
    output: int = 0
    total: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(self.prompt + other.prompt, self.output + other.output, self.total + other.total)

    @classmethod
    def of(cls, metadata: Any) -> TokenUsage | None:
        """From a response's ``usage_metadata`` (google-genai's type or anything with its attributes)."""
        if metadata is None:
            return None
        prompt = getattr(metadata, "prompt_token_count", None) or 0
        output = (getattr(metadata, "candidates_token_count", None) or 0) + (
            getattr(metadata, "thoughts_token_count", None) or 0
        )
        total = getattr(metadata, "total_token_count", None) or prompt + output
        return cls(int(prompt), int(output), int(total))


@dataclass(frozen=True, slots=True)
class Answer:
    """A validated recommendation and what asking for it cost (None: Gemini did not say)."""

    recommendation: Recommendation
    usage: TokenUsage | None = None


@dataclass(frozen=True, slots=True)
class TokenPrices:
    """Prices per million input and output tokens (``GEMINI_PRICE_*_PER_M``); both 0: no cost is shown."""

    input_per_m: float = 0.0
    output_per_m: float = 0.0

    @property
    def known(self) -> bool:
        return self.input_per_m > 0 or self.output_per_m > 0

    def cost(self, prompt_tokens: int, output_tokens: int) -> float | None:
        """The estimated cost of these tokens, or None when no price is set."""
        if not self.known:
            return None
        return (prompt_tokens * self.input_per_m + output_tokens * self.output_per_m) / _MILLION
