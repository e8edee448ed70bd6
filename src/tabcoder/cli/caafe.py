"""`tabcoder caafe`: let the model engineer features for a task, keep those that cross-validation accepts,
and write the feature code, the table of every proposal and the transformed data.

A thin layer over `tabcoder.caafe`: it loads the task and the model, calls `run_caafe` on all labelled
rows, writes the outputs, prints progress, and turns typed errors into `error: ...` and exit codes
(2 for bad input, 1 for failures at run time) through `common.fail_cleanly`.
"""

from __future__ import annotations

from pathlib import Path

import click

from tabcoder.caafe.cv import BASE_MODELS
from tabcoder.caafe.engine import CaafeSettings
from tabcoder.caafe.result import CaafeResult, fmt_value
from tabcoder.cli.common import fail_cleanly, field_default, model_options, task_options
from tabcoder.cli.progress import Progress
from tabcoder.config import RunConfig


def _summary(result: CaafeResult, run_dir: Path, written: list[str]) -> str:
    kept = ", ".join(result.added + [f"-{c}" for c in result.dropped]) or "none"
    return "\n".join([
        f"folder:            {run_dir}",
        f"proposals:         {len(result.proposals)} made, {len(result.kept)} kept ({kept}); stopped: "
        f"{result.stop_reason}",
        f"base-model CV:     {result.metric} {fmt_value(result.base_score)} -> {fmt_value(result.final_score)}",
        f"files:             {', '.join(written)}",
        f"tokens, time:      {result.tokens} tokens, {result.seconds / 60:.1f} min",
    ])


@click.command("caafe")
@click.argument("task", type=click.Path(path_type=Path))
# --features: CAAFE alone asks for 5 proposals; RunConfig.caafe is 0 (a run has no CAAFE stage by default).
@click.option("--features", "n_features", type=int, default=5, show_default=True,
              help="How many feature proposals to ask the model for.")
@click.option("--max-kept", type=int, help="Stop once this many features were kept.")
@model_options
@task_options
@click.option("--folds", type=int, default=CaafeSettings.folds, show_default=True, help="Cross-validation folds.")
@click.option("--repeats", type=int, default=CaafeSettings.repeats, show_default=True,
              help="Cross-validation repeats (new folds each).")
@click.option("--min-gain", type=float, default=CaafeSettings.min_gain, show_default=True,
              help="Relative CV improvement needed to keep a feature (0.0025 = 0.25 %).")
@click.option("--min-t", type=float, default=CaafeSettings.min_t, show_default=True,
              help="Paired t statistic over the folds needed to keep a feature.")
@click.option("--base-model", type=click.Choice(BASE_MODELS), default=CaafeSettings.base_model, show_default=True,
              help="hgb: HistGradientBoosting; rf: a 50-tree random forest.")
@click.option("--max-rows", type=int, default=CaafeSettings.max_rows, show_default=True,
              help="Cross-validate on a stratified sample of at most this many rows.")
@click.option("--timeout", type=float, default=CaafeSettings.timeout, show_default=True,
              help="Seconds per sandbox run of feature code.")
@click.option("--temperature", type=float, default=CaafeSettings.temperature, show_default=True)
@click.option("--threads", type=int, default=RunConfig.threads, show_default=True,
              help="CPU threads for llama.cpp and the sandbox.")
@click.option("--n-ctx", type=int, default=RunConfig.n_ctx, show_default=True,
              help="Context length for llama.cpp models.")
@click.option("--seed", type=int, default=RunConfig.seed, show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=field_default(RunConfig, "out_dir"),
              show_default=True, help="Folder that receives the <time>-<task>-caafe folder.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
def caafe_command(**options) -> None:
    """Engineer features for TASK with CAAFE: the model proposes features as pandas code, the sandbox runs
    them, repeated cross-validation with the task's metric keeps those that help.

    Writes features.py (add_features(df)), proposals.csv / proposals.md (every proposal: code, reason,
    CV score without / with, kept or not), train.csv / test.csv (the transformed data) and caafe.json.
    Exit status: 0 when the outputs are written, 1 when the model or the feature code fails, 2 for bad input.
    """
    fail_cleanly(_caafe)(**options)


def _caafe(task: Path, n_features: int, model: str, base_url: str | None, threads: int, n_ctx: int, seed: int,
           out_dir: Path, quiet: bool, target, id_column, task_type, metric, positive_label, test_path,
           **settings) -> None:
    from tabcoder.backends import get_backend
    from tabcoder.caafe.engine import check_n_features, run_caafe
    from tabcoder.runner import new_run_dir
    from tabcoder.sandbox import LocalSandbox
    from tabcoder.task import load_task

    loaded = load_task(task, target=target, id_column=id_column, task_type=task_type, metric=metric,
                       positive_label=positive_label, test_path=test_path)
    caafe_settings = CaafeSettings(**settings)
    caafe_settings.validate()
    check_n_features(n_features)
    sandbox = LocalSandbox(threads=threads)
    with get_backend(model, threads=threads, n_ctx=n_ctx, base_url=base_url, seed=seed) as backend:
        run_dir = new_run_dir(out_dir, f"{loaded.name}-caafe")
        result = run_caafe(loaded, loaded.train, backend=backend, sandbox=sandbox, n_features=n_features, seed=seed,
                           settings=caafe_settings, workdir=run_dir / "proposals", on_event=Progress(quiet))
    written = _write_all(result, loaded, run_dir, sandbox, caafe_settings.timeout)
    click.echo(_summary(result, run_dir, written))


def _write_all(result: CaafeResult, task, run_dir: Path, sandbox, timeout: float) -> list[str]:
    """The report files, then the transformed train and test tables (the feature code runs in the sandbox)."""
    from tabcoder.caafe.execution import transform_table
    from tabcoder.caafe.result import write_outputs

    written = list(write_outputs(result, run_dir))
    tables = {"train.csv": task.train, "test.csv": task.test}
    for name, table in tables.items():
        if table is None:
            continue
        transformed = transform_table(result.feature_code, table, task=task, sandbox=sandbox,
                                      workspace=run_dir / "apply" / name.removesuffix(".csv"), timeout=timeout * 2)
        transformed.to_csv(run_dir / name, index=False)
        written.append(name)
    return written
