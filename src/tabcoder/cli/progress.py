"""The one progress printer of every `tabcoder` command: the library calls it with `(kind, data)` events
(a run's, CAAFE's, a bench's, a LoRA training's) and it prints lines to stderr, a waiting notice while a
model call takes long, and a tqdm bar over training steps.

The kinds and the fields each carries are `tabcoder.events.EVENTS` (`KNOWN_KINDS` is its keys). Every kind
there is either handled (an `on_<kind>` method) or listed in `SILENT_KINDS`, and every `on_<kind>` method has
an entry there (`kind_problems()` says what is not so; a test checks it). A kind outside them is a printer
that fell behind the library: with TABCODER_STRICT_EVENTS=1 (the test suite sets it) it raises
`UnknownEvent`, and data whose keys are not exactly its kind's fields raises `WrongEventFields`; elsewhere
an unknown kind is logged at debug level and dropped, and the data is not checked, so that a new event never
breaks a user's run.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

import click

from tabcoder.events import EVENTS, field_names

log = logging.getLogger(__name__)

# Kinds that print nothing: the command prints what they carry itself (run_end, report, caafe_end,
# bench_end), or the lines of the events around them say it (resume, round_start, confirm_start).
SILENT_KINDS = frozenset({"resume", "round_start", "confirm_start", "run_end", "report", "caafe_end", "bench_end"})


class EventError(RuntimeError):
    """An event the printer cannot trust (raised in strict mode only)."""


class UnknownEvent(EventError):
    """An event kind that `tabcoder.events.EVENTS` does not list."""


class WrongEventFields(EventError):
    """An event whose data's keys are not exactly the fields of its kind's dataclass."""


def strict_default() -> bool:
    """Whether unknown event kinds and wrong fields raise: TABCODER_STRICT_EVENTS=1 (the test suite sets it, and the `tabcoder`
    processes its tests start inherit it)."""
    flag = os.environ.get("TABCODER_STRICT_EVENTS", "").strip().lower()
    return bool(flag) and flag not in ("0", "false", "no", "off")


class WaitNotice:
    """While a model call takes longer than a few seconds, say so: on a terminal one line that counts the
    seconds, elsewhere a line at 10 s, 30 s, 60 s and every minute after."""

    FIRST = 3.0
    MARKS = (10.0, 30.0, 60.0)

    def __init__(self, purpose: str, timeout: float | None, *, tty: bool) -> None:
        self.purpose, self.timeout, self.tty = purpose, timeout, tty
        self._done = threading.Event()
        self._shown = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _text(self, waited: float) -> str:
        limit = f" (limit {self.timeout:.0f} s)" if self.timeout else ""
        return f"  {self.purpose}: waiting for the model, {waited:.0f} s{limit}"

    def _run(self) -> None:
        started = time.monotonic()
        marks = list(self.MARKS)
        while not self._done.wait(1.0):
            waited = time.monotonic() - started
            if self.tty and waited >= self.FIRST:
                click.echo("\r" + self._text(waited), err=True, nl=False)
                self._shown = True
            elif not self.tty and waited >= marks[0]:
                click.echo(self._text(waited), err=True)
                marks = marks[1:] or [marks[0] + 60.0]

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=2)
        if self._shown:
            click.echo("\r\033[K", err=True, nl=False)


class Progress:
    """Prints the events of a run, CAAFE, a bench or a training to stderr; `quiet` prints nothing (the
    kinds are still checked). `strict`: unknown kinds and wrong fields raise (default: `strict_default()`)."""

    def __init__(self, quiet: bool = False, *, strict: bool | None = None) -> None:
        self.quiet = quiet
        self.strict = strict_default() if strict is None else strict
        self._wait: WaitNotice | None = None
        self.bar = None  # the tqdm bar of a training

    def __call__(self, kind: str, data: dict) -> None:
        event = EVENTS.get(kind)
        if event is None:
            if self.strict:
                raise UnknownEvent(f"the progress printer does not know the event {kind!r}: add its dataclass "
                                   f"to tabcoder.events, and an on_{kind} method to tabcoder.cli.progress.Progress "
                                   f"or the kind to SILENT_KINDS")
            log.debug("progress: event %r not printed (unknown kind)", kind)
            return
        if self.strict:
            check_fields(kind, data)
        handler = getattr(self, f"on_{kind}", None)
        if handler is not None and not self.quiet:
            handler(**data)

    @staticmethod
    def _say(text: str) -> None:
        click.echo(text, err=True)

    # a run (tabcoder run / resume)

    def on_run_start(self, run_dir, task, config, model, isolation) -> None:
        self._say(f"isolation: {isolation.get('summary') or isolation.get('network')}")
        self._say(f"task {task.name}: {task.task_type}, target {task.target!r}, metric {task.metric}, "
                  f"{len(task.train)} train rows, {0 if task.test is None else len(task.test)} test rows")
        for note in task.notes:
            self._say(f"  note: {note}")
        self._say(f"model {model}; run folder {run_dir}")

    def on_attempt_start(self, index, kind, parent) -> None:
        if kind == "baseline":
            self._say(f"attempt {index}: the harness's baseline script (no model call) ...")
            return
        origin = "" if parent is None else f" from attempt {parent}"
        self._say(f"attempt {index}: {kind}{origin} ...")

    def on_llm_start(self, purpose, about, timeout) -> None:
        self.on_llm_done(purpose)
        self._wait = WaitNotice(purpose, timeout, tty=sys.stderr.isatty())

    def on_llm_done(self, purpose) -> None:
        wait, self._wait = self._wait, None
        if wait is not None:
            wait.stop()

    def on_search_cut(self, error, attempts, valid) -> None:
        self._say(f"the search stopped: {error}")
        self._say(f"  finalising what the {attempts} attempt(s) so far found ({valid} valid)")

    def on_llm(self, purpose, completion) -> None:
        self._say(f"  {purpose}: {completion.prompt_tokens}+{completion.completion_tokens} tokens, "
                  f"{completion.seconds:.1f} s")

    def on_reflection(self, index, text) -> None:
        first = " ".join(text.split())[:160]
        self._say(f"  reflection on attempt {index}: {first}")

    def on_attempt_end(self, attempt, best) -> None:
        status = attempt.status()
        gain = "" if attempt.gain is None else f", {attempt.gain:+.4g} over the baseline"
        shown = {"valid": f"valid, {status.detail}{gain}" + (" (best)" if best is attempt else ""),
                 "nocode": "no code in the answer", "edit": f"its edit did not apply: {status.detail}",
                 "repeat": f"same script as attempt {status.detail}, not run again",
                 "timeout": "timed out", "error": f"failed: {status.detail}",
                 "invalid": f"invalid submission: {status.detail}", "pending": "pending"}[status.kind]
        self._say(f"  -> attempt {attempt.index}: {shown}; ran {attempt.run_seconds:.1f} s, {attempt.tokens} tokens")

    def on_interrupted(self, attempts) -> None:
        self._say(f"interrupted after {attempts} attempts: refitting the best so far (Ctrl-C again to abort)")

    def on_ensemble_end(self, members, chosen, reason) -> None:
        self._say(f"ensemble: {members}: {reason}" + ("" if chosen else "; not used"))

    def on_final_start(self, attempt, workspace, label=None) -> None:
        what = label or f"attempt {attempt.index}"
        self._say(f"final: refitting {what} on all train rows, predicting the test set ...")

    def on_final_end(self, attempt, ok, problems, seconds) -> None:
        self._say(f"  -> {'ok' if ok else 'failed: ' + problems[0][:160]} ({seconds:.1f} s)")

    # CAAFE (tabcoder caafe, and run --caafe)

    def on_caafe_start(self, task, n_features, base, rows) -> None:
        self._say(f"task {task.name}: {task.task_type}, target {task.target!r}; CAAFE asks for {n_features} "
                  f"feature(s), cross-validating on {rows} rows; base-model CV {base}")

    def on_caafe_proposal(self, proposal, metric: str) -> None:
        self._say(f"proposal {proposal.index}: {proposal.label}: {proposal.outcome(metric)} "
                  f"[{proposal.seconds:.1f} s]")

    # a bench (tabcoder bench)

    def on_bench_start(self, summary, todo) -> None:
        self._say(f"bench: {summary.cells} cells, {summary.already_done} already done, {todo} to run"
                  + (f" ({summary.interrupted} interrupted earlier, re-run)" if summary.interrupted else "")
                  + f"; results in {summary.db}")
        for name, why in summary.skipped.items():
            self._say(f"  note: baseline {name} skipped: {why}")

    def on_cell_end(self, spec, outcome, finished, todo) -> None:
        from tabcoder.bench.report import fmt_number

        if outcome.status == "error":
            status = "error: " + ((outcome.error or "").splitlines() or ["?"])[0][:160]
        elif outcome.valid:
            status = (f"test {outcome.metric} {fmt_number(outcome.test_score)}, "
                      f"validation {fmt_number(outcome.validation_score)}")
        else:
            status = "no valid final submission"
        self._say(f"[{finished}/{todo}] {spec.task} {spec.system} seed {spec.seed}: {status} "
                  f"({outcome.seconds or 0:.0f} s)")

    # a LoRA training (tabcoder sft train): a progress bar over optimizer steps, plus the lines that matter.
    # These events carry more than is printed (a step's whole log record), hence the `**_`.

    def on_train_start(self, base, device, examples, too_long, eval_examples, steps, trainable, resumed_at,
                       **_) -> None:
        origin = f" (from {base.source_gguf})" if base.source_gguf else ""
        self._say(f"base {base.hf_dir}{origin}; device {device}; {examples} examples"
                  + (f" ({too_long} left out: longer than --max-length)" if too_long else "")
                  + f", {eval_examples} held out; {steps} steps; {trainable:,} trainable parameters")
        if resumed_at:
            self._say(f"resuming after step {resumed_at}")
        from tqdm import tqdm

        self.bar = tqdm(total=steps, initial=resumed_at, unit="step", dynamic_ncols=True)

    def on_eval(self, when, loss, **_) -> None:
        text = f"held-out loss {when} training: {loss:.4f}"
        (self.bar.write(text) if self.bar else self._say(text))

    def on_step(self, loss, seconds, **_) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", s_per_step=f"{seconds:.1f}")
            self.bar.update(1)

    def on_train_end(self, **_) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_stage_start(self, stage, total, done, detail) -> None:
        self._say(f"{stage}: {detail}")
        if total and done < total and stage in ("teacher", "evaluate"):
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, unit="run", desc=stage, dynamic_ncols=True)

    def on_stage_item(self, stage, done, total, text) -> None:
        line = f"  [{done}/{total}] {text}" if total else f"  {text}"
        if self.bar is not None:
            self.bar.update(1)
            self.bar.write(line)
        else:
            self._say(line)

    def on_stage_end(self, stage, text) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self._say(f"{stage}: {text}")


def check_fields(kind: str, data: dict) -> None:
    """Raise `WrongEventFields` unless `data`'s keys are exactly the fields of `EVENTS[kind]`."""
    expected = set(field_names(EVENTS[kind]))
    missing, extra = sorted(expected - set(data)), sorted(set(data) - expected)
    if missing or extra:
        raise WrongEventFields(f"the event {kind!r} carries the wrong fields: "
                               + "; ".join(f"{what} {', '.join(keys)}" for what, keys in
                                           (("missing", missing), ("unexpected", extra)) if keys)
                               + f" (its fields: tabcoder.events.{EVENTS[kind].__name__})")


HANDLED_KINDS = frozenset(name.removeprefix("on_") for name in dir(Progress) if name.startswith("on_"))
KNOWN_KINDS = frozenset(EVENTS)


def kind_problems() -> list[str]:
    """What is out of step between `EVENTS` and the printer: kinds neither handled nor silent, `on_<kind>`
    methods or silent kinds without an event. Empty when all is well."""
    problems = [f"{kind}: neither an on_{kind} method nor in SILENT_KINDS"
                for kind in sorted(KNOWN_KINDS - HANDLED_KINDS - SILENT_KINDS)]
    problems += [f"on_{kind}: no such event in tabcoder.events.EVENTS" for kind in sorted(HANDLED_KINDS - KNOWN_KINDS)]
    problems += [f"{kind} (SILENT_KINDS): no such event in tabcoder.events.EVENTS"
                 for kind in sorted(SILENT_KINDS - KNOWN_KINDS)]
    problems += [f"{kind}: both handled and in SILENT_KINDS" for kind in sorted(HANDLED_KINDS & SILENT_KINDS)]
    return problems
