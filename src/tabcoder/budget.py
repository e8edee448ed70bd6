"""Budgets and time estimates: when the search stops, and how the time of a run is planned around the end.

Scope: `Budget` (attempts begun, wall seconds, tokens: what every strategy checks before the next step) and
`TimePlan` (how long confirming the best attempts on folds and refitting the final one will take, so that a
`--time-budget` is the time of the whole run; how long an attempt or the refit may run when the budget is
nearly spent). Estimates come from the attempts' own run times, scaled by how much larger the full
training set is than the fit part of the split. Nothing here runs anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tabcoder.config import RunConfig
from tabcoder.journal import Attempt, Journal

MIN_ATTEMPT_SECONDS = 10.0  # the shortest timeout an attempt gets when the time budget is nearly spent
CONFIRM_SHARE = 0.15  # under a time budget, fold confirmation may use at most this share of it
SETUP_SECONDS = 1.0  # preparing a workspace, per final step (run_seconds already include starting Python)


def _no_reserve(journal: Journal) -> float:
    return 0.0


@dataclass
class Budget:
    """When to stop: attempts begun, wall seconds since `started`, total LLM tokens (None: no such limit).

    `finish_reserve(journal)` is the time to keep in hand after the search for choosing and refitting the
    final solution, so that a time budget is the time of the whole run."""

    iterations: int | None
    seconds: float | None = None
    tokens: int | None = None
    started: float = 0.0
    finish_reserve: Callable[[Journal], float] = _no_reserve

    def exhausted(self, journal: Journal, now: float, reserve: float = 0.0) -> str | None:
        if self.iterations is not None and journal.started >= self.iterations:
            return f"iteration budget ({self.iterations}) reached"
        if self.tokens is not None and journal.tokens >= self.tokens:
            return f"token budget ({self.tokens}) reached"
        if self.seconds is not None and now - self.started + reserve + self.finish_reserve(journal) >= self.seconds:
            return f"time budget ({self.seconds:.0f} s) reached"
        return None


@dataclass
class TimePlan:
    """Time estimates for the end of a run. `growth` is full train rows / fit rows; `seconds_left()` is the
    time left in the budget (None without one); `workers` run fold checks at once."""

    config: RunConfig
    growth: float
    workers: int
    seconds_left: Callable[[], float | None]

    def refit_estimate(self, attempt: Attempt) -> float:
        return attempt.run_seconds * self.growth + SETUP_SECONDS

    def confirm_estimate(self, candidates: list[Attempt]) -> float:
        k = self.config.confirm_folds
        if k < 2:  # confirmation is off
            return 0.0
        fold_share = (k - 1) / k * self.growth
        runs = sum(a.run_seconds * fold_share + SETUP_SECONDS for a in candidates) * k
        return runs / self.workers

    def confirmable(self, candidates: list[Attempt], seconds: float | None) -> list[Attempt]:
        """The best candidates whose confirmation fits in `seconds` (all when None); fewer than two: none."""
        if self.config.confirm_folds < 2:
            return []
        top = candidates[:self.config.confirm_top]
        while seconds is not None and len(top) >= 2 and self.confirm_estimate(top) > seconds:
            top = top[:-1]
        return top if len(top) >= 2 and self.config.confirm_folds else []

    def affordable(self, ranked: list[Attempt]) -> list[Attempt]:
        """As many candidates (best first) as the time left leaves room for, next to the final refit."""
        left = self.seconds_left()
        if left is not None:
            left -= self.refit_estimate(ranked[0])
        return self.confirmable(ranked, left)

    def finish_estimate(self, journal: Journal) -> float:
        """Seconds to keep for confirming the best candidates on folds and refitting the final one (with
        `--ensemble`, every confirmed candidate, as a blend may use them all). Under a time budget, confirmation
        is planned within `CONFIRM_SHARE` of it (fewer candidates, or none)."""
        ranked = journal.ranked()
        if not ranked:
            return 0.0
        budget = self.config.time_budget
        confirmed = self.confirmable(ranked, None if budget is None else CONFIRM_SHARE * budget)
        refit = self.refit_estimate(ranked[0])
        if self.config.ensemble and confirmed:  # an ensemble refits each of its members, the confirmed at most
            refit = sum(self.refit_estimate(a) for a in confirmed)
        return refit + (self.confirm_estimate(confirmed) if confirmed else 0.0)

    def attempt_timeout(self, journal: Journal) -> float:
        """The configured timeout, shortened near the end of a time budget (but never below a floor)."""
        left = self.seconds_left()
        if left is None:
            return self.config.timeout
        left -= self.finish_estimate(journal)
        return min(self.config.timeout, max(MIN_ATTEMPT_SECONDS, left))

    def refit_timeout(self, attempt: Attempt) -> float:
        """Twice the attempt timeout (more rows); under a time budget the time left, but enough for this script."""
        timeout = self.config.timeout * 2
        left = self.seconds_left()
        if left is None:
            return timeout
        needed = 3 * attempt.run_seconds * self.growth + MIN_ATTEMPT_SECONDS
        return min(timeout, max(left, needed))
