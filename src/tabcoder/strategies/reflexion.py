"""Reflexion: draft a script; after each attempt the model reflects on the harness's feedback; the next
script is written from the task, the previous code, its feedback, the attempt history and the memory of
reflections. Stops when the iteration, wall-time or token budget is spent.

Which script the next attempt starts from: the last one while it is being repaired (up to `max_repairs`
failures in a row), otherwise the best valid one, to be improved. The loop is sequential by nature (each
step needs the previous result), so it evaluates in the calling thread. Budgets, seeds, repeated-script
detection and recording are shared with the other strategies (`strategies.common`).
"""

from __future__ import annotations

from dataclasses import dataclass

from tabcoder.journal import Attempt, Journal, LLMCall
from tabcoder.strategies.common import (
    NO_CODE_FEEDBACK,
    SearchStrategy,
    shown_code,
    summarise,
)

__all__ = ["Reflexion", "NO_CODE_FEEDBACK"]  # NO_CODE_FEEDBACK lives in common

HISTORY_LINES = 12


@dataclass
class Reflexion(SearchStrategy):
    """The original project's loop, with harness-owned grading."""

    max_repairs: int = 3

    def _search(self, journal: Journal) -> str:
        while True:
            reason = self._stop_reason(journal)
            if reason:
                return reason
            self._step(journal)

    # -- one iteration -----------------------------------------------------------------------------
    def _step(self, journal: Journal) -> None:
        index = journal.next_index
        started = self.elapsed()
        calls: list[LLMCall] = []
        base = self._base(journal)
        idea = None
        if base is None:
            kind, parent, messages = "draft", None, self.builder.draft()
        else:
            kind = "improve" if base.valid else "repair"
            parent = base.index
            failed = not base.valid
            self._reflect(base, failed, calls, journal)
            idea = None if failed else self._next_idea(journal, base)
            messages = self.builder.revise(shown_code(base), base.feedback, failed=failed,
                                           reflections=self._memory(journal),
                                           history=summarise(journal.attempts, HISTORY_LINES), idea=idea)
        attempt = self._write(index, parent, kind, messages, calls, started=started, idea=idea)
        self._queue.submit(attempt)
        self._queue.wait_all()

    # -- helpers -------------------------------------------------------------------------------------
    def _base(self, journal: Journal) -> Attempt | None:
        if not journal.attempts:
            return None
        last, best = journal.attempts[-1], journal.best()
        if last.duplicate_of is not None and best is not None:
            return best
        if last.valid or best is None:
            return best if best is not None and best.score_value > last.score_value else last
        failures_in_a_row = 0
        for attempt in reversed(journal.attempts):
            if attempt.valid:
                break
            failures_in_a_row += 1
        return last if failures_in_a_row <= self.max_repairs else best

    def _next_idea(self, journal: Journal, base: Attempt) -> str | None:
        """The next improvement idea in turn, skipping one that asks for the model `base` already uses."""
        ideas = self.builder.ideas()
        if not ideas:
            return None
        done = sum(1 for a in journal.attempts if a.idea is not None)
        for offset in range(len(ideas)):
            idea = ideas[(done + offset) % len(ideas)]
            if idea.applies_to(base.code):
                return idea.text
        return ideas[done % len(ideas)].text

    def _memory(self, journal: Journal) -> list[str]:
        notes = [f"attempt {a.index}: {a.reflection}" for a in journal.attempts if a.reflection]
        return notes[-self.memory_size:]
