"""Scores that compare by quality: `a > b` means a is better, whatever the metric's direction.

Scope: the `Score` value object (a failed score is worse than any number; NaN and inf count as failed)
and `gain`, how much better one value is than another in the metric's units. Nothing here computes a
metric (`metrics.functions`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from tabcoder.metrics.specs import get_metric


def gain(value: float, base: float, greater_is_better: bool) -> float:
    """How much better `value` is than `base` (negative when worse), in the metric's units."""
    return value - base if greater_is_better else base - value


@functools.total_ordering
@dataclass(frozen=True)
class Score:
    """A metric value that compares by quality: `a > b` means a is better; a failed score (None) is
    worse than any number, so the best attempt is `max(scores)`. NaN/inf count as failed."""

    value: float | None
    metric: str
    greater_is_better: bool

    def __post_init__(self) -> None:
        value = self.value
        if value is not None:
            value = float(value)
            if not math.isfinite(value):
                value = None
        object.__setattr__(self, "value", value)

    @classmethod
    def of(cls, metric_name: str, value: float | None) -> Score:
        spec = get_metric(metric_name)
        return cls(value, spec.name, spec.greater_is_better)

    @classmethod
    def worst(cls, metric_name: str) -> Score:
        return cls.of(metric_name, None)

    @property
    def failed(self) -> bool:
        return self.value is None

    @property
    def direction(self) -> float:
        """+1 when greater is better, -1 when smaller is: `direction * (a - b) > 0` means a is better."""
        return 1.0 if self.greater_is_better else -1.0

    def gain_over(self, other: Score) -> float | None:
        """How much better self is than `other` in the metric's units (negative when worse); None if either failed."""
        if self.value is None or other.value is None:
            return None
        return gain(self.value, other.value, self.greater_is_better)

    def relative_gain_over(self, other: Score) -> float | None:
        """`gain_over(other)` relative to |other| (0.01 = 1% better); None if either failed."""
        delta = self.gain_over(other)
        if delta is None or other.value is None:
            return None
        return delta / max(abs(other.value), 1e-12)

    def __lt__(self, other: object) -> bool:
        """True when self is worse than other."""
        if not isinstance(other, Score):
            return NotImplemented
        if other.metric != self.metric:
            raise TypeError(f"cannot compare a {self.metric} score with a {other.metric} score")
        if other.value is None:
            return False
        if self.value is None:
            return True
        return self.value < other.value if self.greater_is_better else self.value > other.value

    def __str__(self) -> str:
        if self.value is None:
            return "failed"
        v = self.value
        shown = f"{v:.4f}" if v == 0 or abs(v) >= 1e-3 else f"{v:.3e}"
        return f"{self.metric} {shown}"
