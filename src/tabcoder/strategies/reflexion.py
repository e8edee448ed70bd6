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
from tabcoder.ideas import normalise_idea, proposed_change
from tabcoder.strategies.common import (
    NO_CODE_FEEDBACK,
    SearchStrategy,
    edited_script,
    repair_target,
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
        idea = source = script = function = None
        if base is None:
            kind, parent, messages = "draft", None, self.builder.draft()
        else:
            kind = "improve" if base.valid else "repair"
            parent = base.index
            failed = not base.valid
            reflection = self._reflect(base, failed, calls, journal)
            if not failed:
                idea, source = self._next_idea(journal, base, reflection)
            script = edited_script(base, journal)
            edit_format = self.edit_format if script is not None else "whole"
            shown = shown_code(base, journal)
            if edit_format == "functions":
                function = repair_target(base, journal) if failed else self.builder.edit_target(idea, shown)
            messages = self.builder.revise(shown, base.feedback, failed=failed,
                                           reflections=self._memory(journal),
                                           history=summarise(self._buildable(journal), HISTORY_LINES), idea=idea,
                                           edit_format=edit_format, function=function)
        attempt = self._write(index, parent, kind, messages, calls, started=started, idea=idea, base=script,
                              idea_source=source, history=journal.attempts, function=function)
        self._queue.submit(attempt)
        self._queue.wait_all()

    # -- helpers -------------------------------------------------------------------------------------
    def _base(self, journal: Journal) -> Attempt | None:
        """The attempt the next step starts from; None: write a first draft (also when the harness's baseline
        failed: the model is not asked to repair the harness's script)."""
        attempts = [a for a in self._buildable(journal) if a.kind != "baseline" or a.valid]
        if not attempts:
            return None
        valid = [a for a in attempts if a.valid]
        last = attempts[-1]
        best = max(valid, key=lambda a: (a.score_value, -a.index)) if valid else None
        if last.duplicate_of is not None and best is not None:
            return best
        if last.valid or best is None:
            return best if best is not None and best.score_value > last.score_value else last
        failures_in_a_row = 0
        for attempt in reversed(attempts):
            if attempt.valid:
                break
            failures_in_a_row += 1
        return last if failures_in_a_row <= self.max_repairs else best

    def _next_idea(self, journal: Journal, base: Attempt, reflection: str) -> tuple[str | None, str | None]:
        """The change to ask for, and who named it: the one the model's reflection on `base` names ("model"),
        unless it was tried on `base` already; else the harness's next generic idea in turn ("harness"),
        skipping one that asks for the model `base` already uses."""
        tried = {normalise_idea(a.idea) for a in journal.attempts if a.parent == base.index and a.idea}
        own = proposed_change(reflection)
        if own is not None and normalise_idea(own) not in tried:
            return own, "model"
        ideas = self.builder.ideas()
        if not ideas:
            return None, None
        done = sum(1 for a in journal.attempts if a.idea_source == "harness" and a.kind != "baseline")
        for offset in range(len(ideas)):
            idea = ideas[(done + offset) % len(ideas)]
            if idea.applies_to(base.code) and normalise_idea(idea.text) not in tried:
                return idea.text, "harness"
        return ideas[done % len(ideas)].text, "harness"

    def _memory(self, journal: Journal) -> list[str]:
        notes = [f"attempt {a.index}: {a.reflection}" for a in journal.attempts if a.reflection]
        return notes[-self.memory_size:]
