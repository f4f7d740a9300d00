"""Token-weighted sums from which perplexity and accuracy are derived, never averaged."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class PerplexityAccumulator:
    """Token-weighted sums from which perplexity and accuracy are derived at the end.

    Add the summed NLL (nats), the number of correct arg-max predictions and the number of
    scored tokens of each batch; :attr:`perplexity` is ``exp(nll_sum / n_tokens)``.
    """

    nll_sum: float = 0.0
    n_correct: int = 0
    n_tokens: int = 0
    n_sequences: int = 0

    def update(self, nll_sum: float, n_correct: int, n_tokens: int, n_sequences: int = 0) -> None:
        self.nll_sum += float(nll_sum)
        self.n_correct += int(n_correct)
        self.n_tokens += int(n_tokens)
        self.n_sequences += int(n_sequences)

    def merge(self, other: PerplexityAccumulator) -> PerplexityAccumulator:
        return PerplexityAccumulator(
            self.nll_sum + other.nll_sum,
            self.n_correct + other.n_correct,
            self.n_tokens + other.n_tokens,
            self.n_sequences + other.n_sequences,
        )

    @property
    def nll_per_token(self) -> float:
        return self.nll_sum / self.n_tokens if self.n_tokens else math.nan

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll_per_token) if self.n_tokens else math.nan

    @property
    def accuracy(self) -> float:
        return self.n_correct / self.n_tokens if self.n_tokens else math.nan

    def as_dict(self) -> dict[str, float | int]:
        return {
            "perplexity": self.perplexity,
            "accuracy": self.accuracy,
            "nll_per_token": self.nll_per_token,
            "n_tokens": self.n_tokens,
            "n_sequences": self.n_sequences,
        }
