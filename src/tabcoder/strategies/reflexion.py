"""Reflexion: draft a script; after each attempt the model reflects on the harness's feedback; the next
script is written from the task, the previous code, its feedback, the attempt history and the memory of
reflections. Stops when the iteration, wall-time or token budget is spent.

Which script the next attempt starts from: the last one while it is being repaired (up to `max_repairs`
failures in a row), otherwise the best valid one, to be improved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from tabcoder.backends import Backend, Completion
from tabcoder.evaluation import Evaluation
from tabcoder.journal import Attempt, Journal, LLMCall
from tabcoder.prompting import PromptBuilder, extract_code, normalise_code

NO_CODE_FEEDBACK = ("Your answer contained no Python code block. Answer with one complete script inside a "
                    "```python code block.")

EventHandler = Callable[[str, dict], None]


@dataclass
class Budget:
    """When to stop: attempts, wall seconds since `started`, total LLM tokens."""

    iterations: int
    seconds: float | None = None
    tokens: int | None = None
    started: float = 0.0

    def exhausted(self, journal: Journal, now: float, reserve: float = 0.0) -> str | None:
        if len(journal.attempts) >= self.iterations:
            return f"iteration budget ({self.iterations}) reached"
        if self.tokens is not None and journal.tokens >= self.tokens:
            return f"token budget ({self.tokens}) reached"
        if self.seconds is not None and now - self.started + reserve >= self.seconds:
            return f"time budget ({self.seconds:.0f} s) reached"
        return None


@dataclass
class Reflexion:
    """The original project's loop, with harness-owned grading."""

    backend: Backend
    builder: PromptBuilder
    evaluate: Callable[[int, str], Evaluation]
    describe: Callable[[Evaluation, Journal], str]
    budget: Budget
    generation: dict = field(default_factory=dict)  # temperature, top_p, max_tokens, seed
    max_repairs: int = 3
    memory_size: int = 5
    reflection_tokens: int = 256
    clock: Callable[[], float] = time.monotonic
    on_event: EventHandler = lambda kind, data: None
    _calls_made: int = field(default=0, init=False)

    def run(self, journal: Journal) -> str:
        """Add attempts to `journal` until a budget is spent; returns why it stopped."""
        while True:
            reason = self.budget.exhausted(journal, self.clock(), reserve=self._reserve(journal))
            if reason:
                return reason
            self._step(journal)

    # -- one iteration -----------------------------------------------------------------------------
    def _step(self, journal: Journal) -> None:
        index = len(journal.attempts) + 1
        started = self.clock()
        calls: list[LLMCall] = []
        base = self._base(journal)
        idea = None
        if base is None:
            kind, parent, messages = "draft", None, self.builder.draft()
        else:
            kind = "improve" if base.valid else "repair"
            parent = base.index
            failed = not base.valid
            if base.reflection is None:
                base.reflection = self._reflect(base, failed, calls)
                journal.update(base)
            idea = None if failed else self._next_idea(journal)
            messages = self.builder.revise(self._shown_code(base), base.feedback, failed=failed,
                                           reflections=self._memory(journal), history=self._history(journal),
                                           idea=idea)
        self.on_event("attempt_start", {"index": index, "kind": kind, "parent": parent})
        completion = self._complete(messages, self.generation.get("max_tokens", 1536), "code", index, calls)
        code = extract_code(completion.text)
        attempt = Attempt(index=index, parent=parent, kind=kind, messages=messages, response=completion.text,
                          code=code, calls=calls, started_at=started, idea=idea,
                          metric=self.builder.task.metric, greater_is_better=self.builder.task.metric_spec.greater_is_better)
        duplicate = self._duplicate_of(code, journal) if code is not None else None
        if code is None:
            attempt.feedback = NO_CODE_FEEDBACK
        elif duplicate is not None:
            attempt.duplicate_of = duplicate.index
            attempt.feedback = (f"This script is the same as attempt {duplicate.index} ({self._outcome(duplicate)}), "
                                "so it was not run again. Write a script that actually changes something.")
        else:
            self._record(attempt, self.evaluate(index, code), journal)
        journal.append(attempt)
        self.on_event("attempt_end", {"attempt": attempt, "best": journal.best()})

    def _record(self, attempt: Attempt, evaluation: Evaluation, journal: Journal) -> None:
        result, grade = evaluation.result, evaluation.grade
        attempt.exit_code = result.exit_code
        attempt.timed_out = result.timed_out
        attempt.killed_by = result.killed_by
        attempt.run_seconds = result.duration
        attempt.peak_memory_mb = result.peak_memory_mb
        attempt.stdout, attempt.stderr, attempt.traceback = result.stdout, result.stderr, result.traceback
        if grade is not None:
            attempt.valid = grade.valid
            attempt.score = grade.score.value if grade.valid else None
            attempt.problems = list(grade.problems)
        attempt.feedback = self.describe(evaluation, journal)

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

    @staticmethod
    def _duplicate_of(code: str, journal: Journal) -> Attempt | None:
        key = normalise_code(code)
        for attempt in journal.attempts:
            if attempt.code is not None and attempt.duplicate_of is None and normalise_code(attempt.code) == key:
                return attempt
        return None

    def _next_idea(self, journal: Journal) -> str | None:
        ideas = self.builder.ideas()
        if not ideas:
            return None
        done = sum(1 for a in journal.attempts if a.idea is not None)
        return ideas[done % len(ideas)]

    @staticmethod
    def _shown_code(attempt: Attempt) -> str:
        return attempt.code if attempt.code is not None else attempt.response

    def _reflect(self, base: Attempt, failed: bool, calls: list[LLMCall]) -> str:
        messages = self.builder.reflect(self._shown_code(base), base.feedback, failed=failed)
        completion = self._complete(messages, self.reflection_tokens, "reflection", base.index, calls)
        text = completion.text.strip()
        self.on_event("reflection", {"index": base.index, "text": text})
        return text

    def _complete(self, messages, max_tokens: int, purpose: str, about: int, calls: list[LLMCall]) -> Completion:
        options = {k: v for k, v in self.generation.items() if k != "max_tokens"}
        if options.get("seed") is not None:  # a new sample for every call, reproducible from the run's seed
            self._calls_made += 1
            options["seed"] = options["seed"] + self._calls_made
        completion = self.backend.complete(messages, max_tokens=max_tokens, **options)
        calls.append(LLMCall(purpose=purpose, about=about, prompt_tokens=completion.prompt_tokens,
                             completion_tokens=completion.completion_tokens, seconds=completion.seconds,
                             prompt_seconds=completion.prompt_seconds,
                             cached_prompt_tokens=completion.cached_prompt_tokens,
                             finish_reason=completion.finish_reason))
        self.on_event("llm", {"purpose": purpose, "completion": completion})
        return completion

    def _memory(self, journal: Journal) -> list[str]:
        notes = [f"attempt {a.index}: {a.reflection}" for a in journal.attempts if a.reflection]
        return notes[-self.memory_size:]

    @staticmethod
    def _outcome(a: Attempt) -> str:
        if a.valid:
            return str(a.score_value)
        if a.code is None:
            return "no code"
        if a.duplicate_of is not None:
            return f"same as attempt {a.duplicate_of}"
        if a.timed_out:
            return "timed out"
        if a.exit_code not in (0, None):
            last_line = (a.traceback or a.stderr or "").strip().splitlines()[-1:] or ["error"]
            return f"failed: {last_line[0][:120]}"
        return "invalid submission"

    def _history(self, journal: Journal) -> list[str]:
        lines = []
        for a in journal.attempts:
            change = f"; change: {a.idea[:70]}" if a.idea else ""
            lines.append(f"attempt {a.index} ({a.kind}{change}): {self._outcome(a)}")
        return lines

    def _reserve(self, journal: Journal) -> float:
        """Seconds to keep in hand under a time budget: one more attempt like the average so far."""
        if not journal.attempts:
            return 0.0
        spent = [a.llm_seconds + a.run_seconds for a in journal.attempts]
        return sum(spent) / len(spent)
