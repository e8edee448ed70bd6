"""What every search strategy shares: budgets, model calls with a fresh seed each, turning a reply into a
journal record (no code / repeated script / run and graded), and attempt summaries. (The improvement ideas
themselves, and whether one applies to a script, are `tabcoder.ideas.Idea`s.)

A strategy decides *what* to ask the model next (`SearchStrategy._search`); this module is how an
attempt is made and recorded, so Reflexion and the tree search spend budgets, seed calls, detect
repeats and write records the same way, and both resume from a journal the same way.

Attempts are completed in index order (`AttemptQueue`), even when their evaluations run in parallel
and finish in another order: what an attempt's feedback says ("best so far ...") then depends only on
earlier attempts, so a parallel run records the same content as a serial one.
"""

from __future__ import annotations

import ast
import difflib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import cast

from tabcoder.backends import Backend, Completion, GenerationSettings
from tabcoder.budget import Budget
from tabcoder.edits import apply_reply
from tabcoder.evaluation import Evaluation, EvaluationPool
from tabcoder.events import AttemptEnd, AttemptStart, Llm, LlmDone, LlmStart, Reflection, emit_event
from tabcoder.journal import Attempt, Journal, LLMCall
from tabcoder.imports import add_missing_imports
from tabcoder.prompting import Messages, PromptBuilder, approach_label, failing_function, normalise_code, reply_start

NO_CODE_FEEDBACK = ("Your answer contained no Python code block. Answer with one complete script inside a "
                    "```python code block.")
SUMMARY_LINE_CHARS = 140
#: The baseline's "idea": what a tree search's drafts are told the baseline uses.
BASELINE_IDEA = "the baseline: gradient boosting (HistGradientBoosting, default settings)"
#: After a reply that repeated an earlier script, the next code call samples this much hotter (per repeat in a
#: row), up to MAX_HEAT.
REPEAT_HEAT = 0.3
MAX_HEAT = 1.0
FUNCTION_TOKENS = 512  # the most tokens a reply that writes one function may take (a whole script: max_tokens)
MIN_REPLY_TOKENS = 128  # a time budget never cuts a reply's token limit below this

EventHandler = Callable[[str, dict], None]
Evaluate = Callable[[int, str], Evaluation]
Describe = Callable[[Evaluation, Journal], str]


def _no_events(kind: str, data: dict) -> None:
    return None


@dataclass
class ModelCaller:
    """Calls the model and records each call. Every call gets its own seed, `seed + n` for the n-th call
    of the run, so samples differ between calls and a resumed run continues the same sequence."""

    backend: Backend
    generation: dict  # GenerationSettings options: temperature, top_p, max_tokens, seed
    on_event: EventHandler = _no_events
    calls_made: int = 0

    def complete(self, messages: Messages, *, max_tokens: int, purpose: str, about: int,
                 calls: list[LLMCall], temperature: float | None = None, prefill: str | None = None,
                 stop: tuple[str, ...] = ()) -> Completion:
        """One call, recorded in `calls`. `prefill`: the start of the reply, given to a backend that continues
        a reply (`Backend.continues_prefill`; others get the messages alone); the completion's text then
        begins with it, and the call record keeps it so that the journal tells what the harness wrote.
        `stop`: stop strings added when the reply is continued (the end of the block it opens)."""
        base = GenerationSettings.of(**self.generation)
        if prefill and not getattr(self.backend, "continues_prefill", False):
            prefill = None
        if prefill:
            messages = [*messages, {"role": "assistant", "content": prefill}]
            base = replace(base, stop=tuple(base.stop or ()) + tuple(stop))
        self.calls_made += 1
        seed = None if base.seed is None else base.seed + self.calls_made
        settings = replace(base, max_tokens=max_tokens, seed=seed)
        if temperature is not None:
            settings = replace(settings, temperature=temperature)
        emit_event(self.on_event, LlmStart(purpose=purpose, about=about,
                                           timeout=getattr(self.backend, "timeout", None)))
        try:
            completion = self.backend.complete(messages, settings=settings)
        finally:
            emit_event(self.on_event, LlmDone(purpose=purpose))
        if prefill:
            completion = replace(completion, text=prefill + completion.text)
        calls.append(LLMCall(purpose=purpose, about=about, prompt_tokens=completion.prompt_tokens,
                             completion_tokens=completion.completion_tokens, seconds=completion.seconds,
                             prompt_seconds=completion.prompt_seconds,
                             cached_prompt_tokens=completion.cached_prompt_tokens,
                             finish_reason=completion.finish_reason, prefill=prefill))
        emit_event(self.on_event, Llm(purpose=purpose, completion=completion))
        return completion


# --------------------------------------------------------------------------- describing attempts


def edited_script(attempt: Attempt, journal: Journal) -> str | None:
    """The script `attempt` stands for: its code, or for a reply whose edit did not apply, the script the edit
    was meant for (its parent's, up the chain of failed edits)."""
    node: Attempt | None = attempt
    while node is not None and node.code is None and node.edit_error is not None and node.parent is not None:
        node = journal.get(node.parent)
    return None if node is None else node.code


def shown_code(attempt: Attempt, journal: Journal | None = None) -> str:
    """What the model is shown as "the script above": the code; for an edit that did not apply, the script it
    was meant for (unchanged); otherwise its whole reply."""
    if attempt.code is None and journal is not None:
        script = edited_script(attempt, journal)
        if script is not None:
            return script
    return attempt.code if attempt.code is not None else attempt.response


def changed_functions(before: str | None, after: str | None) -> list[str]:
    """The module-level functions of `after` that are new or differ from those of `before` (ignoring comments
    and layout); [] when either does not parse."""
    def functions(code: str) -> dict[str, str]:
        tree = ast.parse(code)
        return {n.name: ast.dump(n) for n in tree.body if isinstance(n, ast.FunctionDef)}

    if not before or not after:
        return []
    try:
        old, new = functions(before), functions(after)
    except SyntaxError:
        return []
    return [name for name, dump in new.items() if old.get(name) != dump]


def repair_target(attempt: Attempt, journal: Journal) -> str | None:
    """The one function a repair of the failed `attempt` should rewrite: the function its traceback failed in,
    when the attempt wrote or changed it (or has no parent script); else the one function it changed. None
    when that is unclear (the repair then may change any function)."""
    script = edited_script(attempt, journal)
    if script is None or attempt.kind == "baseline":
        return None
    parent = journal.get(attempt.parent) if attempt.parent is not None else None
    before = edited_script(parent, journal) if parent is not None else None
    changed = changed_functions(before, script)
    failing = failing_function(script, attempt.traceback)
    if failing is not None and (before is None or failing in changed):
        return failing
    return changed[0] if len(changed) == 1 else None


def outcome(attempt: Attempt) -> str:
    """One short phrase for the model: the score, or how the attempt failed."""
    status = attempt.status()
    phrases = {"valid": status.detail, "nocode": "no code", "repeat": f"same as attempt {status.detail}",
               "edit": "its edit did not apply",
               "timeout": "timed out", "error": f"failed: {status.detail or 'error'}", "invalid": "invalid submission",
               "pending": "pending"}
    return phrases[status.kind]


def summary_line(attempt: Attempt, name: str = "attempt") -> str:
    origin = "" if attempt.parent is None else f" of {attempt.parent}"
    if attempt.kind == "baseline":
        return f"{name} {attempt.index} (the harness's baseline script): {outcome(attempt)}"
    if attempt.idea and attempt.kind == "draft":
        change = f": {approach_label(attempt.idea)}"
    else:
        change = f"; change: {attempt.idea[:70]}" if attempt.idea else ""
    line = f"{name} {attempt.index} ({attempt.kind}{origin}{change}): {outcome(attempt)}"
    return line if len(line) <= SUMMARY_LINE_CHARS else line[:SUMMARY_LINE_CHARS - 1] + "…"


def summarise(attempts: list[Attempt], limit: int, name: str = "attempt") -> list[str]:
    """At most `limit` summary lines, oldest first: the best attempt's line is always kept, then the latest."""
    if len(attempts) <= limit:
        return [summary_line(a, name) for a in attempts]
    valid = [a for a in attempts if a.valid]
    best = max(valid, key=lambda a: (a.score_value, -a.index)) if valid else None
    kept = attempts[-limit:]
    if best is not None and best not in kept:
        kept = [best] + attempts[-(limit - 1):]
    return [summary_line(a, name) for a in sorted(kept, key=lambda a: a.index)]


def duplicate_of(code: str, attempts: list[Attempt]) -> Attempt | None:
    """The first earlier attempt with the same script (ignoring comments and blank lines)."""
    key = normalise_code(code)
    for attempt in attempts:
        if attempt.code is not None and attempt.duplicate_of is None and attempt.edit_error is None \
                and normalise_code(attempt.code) == key:
            return attempt
    return None


def fill_from_evaluation(attempt: Attempt, evaluation: Evaluation) -> None:
    """Copy how the script ran and graded onto its attempt."""
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


def prompt_discount(journal: Journal) -> tuple[LLMCall | None, float]:
    """The run's first model call and the seconds it spent evaluating its prompt, when the backend keeps a
    prefix cache (it reports cached prompt tokens): the task, the data profile and the script shown are the
    same in every prompt, so the next calls do not pay for them again. (None, 0) with a backend that reports
    no cache, and once a later call is seen to have evaluated most of its prompt afresh."""
    calls = [c for a in journal.attempts for c in a.calls]
    if not calls or not calls[0].prompt_seconds or calls[0].cached_prompt_tokens is None:
        return None, 0.0
    failed = any(c.cached_prompt_tokens is None or c.cached_prompt_tokens < c.prompt_tokens / 2 for c in calls[1:])
    return (None, 0.0) if failed else (calls[0], calls[0].prompt_seconds)


def attempt_reserve(journal: Journal) -> float:
    """The time to keep in hand for one more model attempt under a time budget: the longest model attempt so
    far (model plus run seconds; the harness's baseline calls no model and does not count), 0 before the
    first. The longest, not the mean: a call that starts must end inside the budget. The first call's prompt
    evaluation does not count while the prefix cache works (`prompt_discount`)."""
    first, discount = prompt_discount(journal)
    return max((a.llm_seconds + a.run_seconds - (discount if any(c is first for c in a.calls) else 0.0)
                for a in journal.attempts if a.kind != "baseline"), default=0.0)


def longest_call(journal: Journal, purpose: str) -> float:
    """The longest model call of `purpose` ("code", "reflection") in the complete attempts so far, or of any
    purpose when there is none of that one yet; 0 before the first call. The first call counts without its
    prompt evaluation while the prefix cache works (`prompt_discount`)."""
    first, discount = prompt_discount(journal)
    calls = [(c, c.seconds - (discount if c is first else 0.0)) for a in journal.attempts for c in a.calls]
    same = [seconds for c, seconds in calls if c.purpose == purpose]
    return max(same or [seconds for _, seconds in calls], default=0.0)


def generation_speed(journal: Journal) -> float | None:
    """Tokens per second at which the model writes a reply: the fastest of its replies of at least 16 tokens
    so far (tokens over the seconds after the prompt), or None before one whose prompt time the backend
    reported. The fastest, because a call's seconds also hold the time it waited for a model shared with
    another run, and a reply cut short for a slow estimate is a lost attempt."""
    rates = [c.completion_tokens / (c.seconds - c.prompt_seconds) for a in journal.attempts for c in a.calls
             if c.prompt_seconds is not None and c.seconds - c.prompt_seconds > 0 and c.completion_tokens >= 16]
    return max(rates, default=None)


def prompt_seconds(journal: Journal) -> float:
    """The longest prompt evaluation of a call so far (the first call's counted as `prompt_discount` says)."""
    first, discount = prompt_discount(journal)
    return max(((c.prompt_seconds or 0.0) - (discount if c is first else 0.0)
                for a in journal.attempts for c in a.calls), default=0.0)


class OutOfTime(Exception):
    """A model call was not started: by the longest call of its kind so far, it would not end inside the time
    budget (with the finish reserve kept). Ends the search; the attempt it was for is not written."""


def first_change(before: str | None, after: str | None) -> str | None:
    """The first line `after` adds to `before` (a one-line description of a change), or None."""
    if not before or not after:
        return None
    for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0):
        if line.startswith("+") and not line.startswith("+++") and line[1:].strip():
            return "changed a line to: " + line[1:].strip()
    return None


def gain_over_baseline(attempt: Attempt, journal: Journal) -> float | None:
    """How much better than the baseline `attempt` scored on the validation rows (metric units, signed so
    that positive is better); None without a valid baseline, for the baseline itself, or a failed attempt."""
    baseline = journal.baseline()
    if baseline is None or attempt.kind == "baseline" or not baseline.valid:
        return None
    return attempt.score_value.gain_over(baseline.score_value)


def repeat_streak(attempts: list[Attempt]) -> list[Attempt]:
    """The latest of `attempts` (complete, in index order) that repeated an earlier script, newest last (empty
    when the last one did not)."""
    streak: list[Attempt] = []
    for attempt in reversed(attempts):
        if attempt.kind == "baseline" or attempt.duplicate_of is None:
            break
        streak.insert(0, attempt)
    return streak


# --------------------------------------------------------------------------- recording attempts


@dataclass
class _InFlight:
    attempt: Attempt
    future: Future | None  # None: nothing to run (no code, or a repeated script)


@dataclass
class AttemptQueue:
    """Writes each attempt pending, evaluates it (in the pool), and completes it in index order."""

    journal: Journal
    evaluate: Evaluate
    describe: Describe
    pool: EvaluationPool
    elapsed: Callable[[], float]
    on_event: EventHandler = _no_events
    _flight: dict[int, _InFlight] = field(default_factory=dict)

    def submit(self, attempt: Attempt) -> None:
        """Record `attempt` as pending and start its evaluation (unless it has no code or repeats one)."""
        self.journal.begin(attempt)
        future = None
        if attempt.code is not None and self._repeats(attempt) is None:
            future = self.pool.submit(self.evaluate, attempt.index, attempt.code)
        self._flight[attempt.index] = _InFlight(attempt, future)

    def resubmit_pending(self) -> int:
        """Evaluate again the attempts a previous process wrote but never completed; returns how many."""
        pending = sorted(self.journal.pending.values(), key=lambda a: a.index)
        for attempt in pending:
            self.submit(attempt)
        return len(pending)

    def collect(self, *, wait: bool = False) -> None:
        """Complete attempts in index order while the next one's evaluation is done (or, with `wait`, all)."""
        for index in sorted(self._flight):
            entry = self._flight[index]
            if entry.future is not None and not wait and not entry.future.done():
                return
            self._complete(entry)
            del self._flight[index]

    def wait_all(self) -> None:
        self.collect(wait=True)

    def settle(self) -> None:
        """After an interrupt: wait for the evaluations still running (a second Ctrl-C aborts) and complete
        them; an attempt whose evaluation was cut short stays pending, to be evaluated again on resume."""
        for index in sorted(self._flight):
            entry = self._flight.pop(index)
            if entry.future is not None and entry.future.exception() is not None:
                continue
            self._complete(entry)

    def _repeats(self, attempt: Attempt) -> Attempt | None:
        earlier = [a for a in self.journal.attempts if a.index < attempt.index]
        earlier += [f.attempt for i, f in sorted(self._flight.items()) if i < attempt.index]
        return duplicate_of(attempt.code, earlier) if attempt.code is not None else None

    def _complete(self, entry: _InFlight) -> None:
        attempt = entry.attempt
        if attempt.edit_error is not None:
            attempt.feedback = f"Your edit could not be applied, so the script above is unchanged: {attempt.edit_error}"
        elif attempt.code is None:
            attempt.feedback = NO_CODE_FEEDBACK
        elif entry.future is None:
            original = cast(Attempt, self._repeats(attempt))  # nothing was run because it repeats one
            attempt.duplicate_of = original.index
            attempt.feedback = (f"This script is the same as attempt {original.index} ({outcome(original)}), "
                                "so it was not run again. Write a script that actually changes something.")
        else:
            evaluation = entry.future.result()
            fill_from_evaluation(attempt, evaluation)
            attempt.feedback = self.describe(evaluation, self.journal)
            attempt.gain = gain_over_baseline(attempt, self.journal)
        attempt.finished_at = self.elapsed()
        self.journal.append(attempt)
        emit_event(self.on_event, AttemptEnd(attempt=attempt, best=self.journal.best()))


# --------------------------------------------------------------------------- the strategy base


@dataclass
class SearchStrategy:
    """Base of the strategies: collaborators, budgets, and the steps every strategy takes.

    Subclasses implement `_search(journal)`, which adds attempts until a budget is spent and returns why
    it stopped. `run` first evaluates attempts a previous (interrupted) process left pending.
    """

    backend: Backend
    builder: PromptBuilder
    evaluate: Evaluate
    describe: Describe
    budget: Budget
    generation: dict = field(default_factory=dict)  # temperature, top_p, max_tokens, seed
    memory_size: int = 5
    reflection_tokens: int = 256
    baseline: bool = False  # run the builder's example script as attempt 0 before the search
    edit_format: str = "functions"  # what improvement and repair steps ask for (tabcoder.edits)
    pool: EvaluationPool | None = None  # None: evaluate in the calling thread
    clock: Callable[[], float] = time.monotonic
    on_event: EventHandler = _no_events

    def run(self, journal: Journal) -> str:
        """Add attempts to `journal` until a budget is spent; returns why it stopped."""
        self._caller = ModelCaller(self.backend, self.generation, self.on_event, calls_made=journal.calls_made())
        self._queue = AttemptQueue(journal, self.evaluate, self.describe, self.pool or EvaluationPool(1),
                                   elapsed=self.elapsed, on_event=self.on_event)
        self._queue.resubmit_pending()
        self._queue.wait_all()
        if self.baseline and journal.get(0) is None:
            self._queue.submit(self._baseline_attempt())
            self._queue.wait_all()
        try:
            reason = self._search(journal)
        except OutOfTime as stop:
            reason = str(stop)
        self._queue.wait_all()
        return reason

    def settle(self) -> None:
        """Called after an interrupt: record what already finished."""
        queue = getattr(self, "_queue", None)
        if queue is not None:
            queue.settle()

    def _search(self, journal: Journal) -> str:
        raise NotImplementedError

    # -- shared steps ----------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.clock() - self.budget.started

    def _buildable(self, journal: Journal) -> list[Attempt]:
        """The complete attempts the model is shown and builds on: all of them, or all but the harness's
        baseline when the prompt hides the example (`--no-example`): the model then works from scratch, and
        the harness still measures every attempt against the baseline."""
        if self.builder.show_example:
            return list(journal.attempts)
        return [a for a in journal.attempts if a.kind != "baseline"]

    def _stop_reason(self, journal: Journal) -> str | None:
        return self.budget.exhausted(journal, self.clock(), reserve=attempt_reserve(journal))

    def _ensure_time(self, purpose: str) -> None:
        """Under a time budget, raise OutOfTime instead of starting a model call that, at the length of the
        longest call of its kind so far, would end after the budget (the finish reserve kept). The check before
        an attempt counts whole attempts; this one also stops the second call of an attempt (the script after
        a reflection), which is where a run overran its budget by a long call."""
        if self.budget.seconds is None:
            return
        journal = self._queue.journal
        need = longest_call(journal, purpose)
        if need and self.elapsed() + need + self.budget.finish_reserve(journal) >= self.budget.seconds:
            raise OutOfTime(f"time budget ({self.budget.seconds:.0f} s) reached: a {purpose} call takes up to "
                            f"{need:.0f} s, more than is left")

    def _affordable(self, max_tokens: int) -> int:
        """`max_tokens`, or fewer under a time budget: as many as the model writes (at its speed so far) in the
        time left after the finish reserve and the longest prompt evaluation so far, so that a reply that
        runs on (a function repeated line after line to the token limit) ends inside the budget. At least
        `MIN_REPLY_TOKENS`; `_ensure_time` has checked that a call of usual length fits."""
        if self.budget.seconds is None:
            return max_tokens
        journal = self._queue.journal
        speed = generation_speed(journal)
        if speed is None:
            return max_tokens
        left = (self.budget.seconds - self.elapsed() - self.budget.finish_reserve(journal)
                - prompt_seconds(journal))
        return max(MIN_REPLY_TOKENS, min(max_tokens, int(left * speed)))

    def _baseline_attempt(self) -> Attempt:
        """Attempt 0: the builder's example script, written by the harness (no model call)."""
        emit_event(self.on_event, AttemptStart(index=0, kind="baseline", parent=None))
        task = self.builder.task
        return Attempt(index=0, parent=None, kind="baseline", messages=[], response="", code=self.builder.example(),
                       started_at=self.elapsed(), idea=BASELINE_IDEA, idea_source="harness",
                       edit_format="whole", metric=task.metric, greater_is_better=task.metric_spec.greater_is_better)

    def _write(self, index: int, parent: int | None, kind: str, messages: Messages, calls: list[LLMCall],
               *, started: float, idea: str | None = None, round: int | None = None, base: str | None = None,
               idea_source: str | None = None, history: list[Attempt] | None = None,
               function: str | None = None, imports: Sequence[str] = ()) -> Attempt:
        """Ask the model for a script and wrap its reply in a (not yet evaluated) attempt. With `base` (the
        script a repair or improvement starts from) the reply may be an edit of it (`tabcoder.edits`). When the
        latest of the complete attempts in `history` repeated earlier scripts, the call samples at a higher
        temperature, and the attempt's `note` says so.

        `function`: the one function of `base` the prompt asks for (functions edit format); a backend that
        continues a reply is given its start (`reply_start`: the fence, the `imports` lines, the `def` line),
        so the model writes that function and not a whole script. A script that uses a well-known name
        without importing it gets the import line (`tabcoder.imports`), and the note says so."""
        self._ensure_time("code")
        emit_event(self.on_event, AttemptStart(index=index, kind=kind, parent=parent))
        temperature, note = self._temperature(history or [])
        prefill = (reply_start(base, function, imports)
                   if base is not None and function is not None and self.edit_format == "functions" else None)
        configured = self.generation.get("max_tokens", 1536)
        if prefill:
            configured = min(configured, FUNCTION_TOKENS)
        completion = self._caller.complete(messages, max_tokens=self._affordable(configured),
                                           purpose="code", about=index, calls=calls, temperature=temperature,
                                           prefill=prefill, stop=("\n```",))
        edit = apply_reply(completion.text, base)
        code = edit.code
        if code is not None:
            code, added = add_missing_imports(code)
            if added:
                note = "; ".join(filter(None, [note, "the harness added the missing import(s) " + ", ".join(
                    f"`{line}`" for line in added)]))
        task = self.builder.task
        return Attempt(index=index, parent=parent, kind=kind, messages=messages, response=completion.text,
                       code=code, edit_format=edit.form, edit_error=edit.error, calls=calls, started_at=started,
                       idea=idea, idea_source=idea_source, note=note, temperature=temperature,
                       metric=task.metric, greater_is_better=task.metric_spec.greater_is_better, round=round)

    def _temperature(self, history: list[Attempt]) -> tuple[float | None, str | None]:
        """The temperature of the next code call: the configured one, raised by `REPEAT_HEAT` for each reply in
        a row that repeated an earlier script (up to `MAX_HEAT`), and a note saying why (None when unchanged)."""
        configured = self.generation.get("temperature")
        streak = repeat_streak(history)
        if not streak:
            return configured, None
        raised = min(MAX_HEAT, (configured or 0.0) + REPEAT_HEAT * len(streak))
        last = streak[-1]
        return raised, (f"attempt {last.index} repeated attempt {last.duplicate_of}: this step samples at "
                        f"temperature {raised:.2f} (configured {configured})")

    def _reflect(self, base: Attempt, failed: bool, calls: list[LLMCall], journal: Journal) -> str:
        """The model's short reflection on `base` and its feedback, stored on `base` (once)."""
        if base.reflection is None:
            self._ensure_time("reflection")
            messages = self.builder.reflect(shown_code(base, journal), base.feedback, failed=failed)
            completion = self._caller.complete(messages, max_tokens=self._affordable(self.reflection_tokens),
                                               purpose="reflection",
                                               about=base.index, calls=calls)
            base.reflection = completion.text.strip()
            journal.update(base)
            emit_event(self.on_event, Reflection(index=base.index, text=base.reflection))
        return base.reflection
