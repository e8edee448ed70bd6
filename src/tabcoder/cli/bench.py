"""`tabcoder bench` and `tabcoder bench-report`: a thin layer over `tabcoder.bench`.

`bench` resolves the suite, builds `BenchSettings`, runs the matrix with the chosen executor and prints
one line per finished cell, then the tables. `bench-report` prints the tables of a results file and
writes its HTML page. Typed errors become `error: ...` and exit 2 through `common.fail_cleanly`.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import cast

import click

from tabcoder.cli.common import fail_cleanly, names
from tabcoder.cli.progress import Progress
from tabcoder.config import DEFAULT_BUDGET_TEXT, RunConfig, parse_duration


def _command_line(ctx: click.Context) -> str:
    """`tabcoder bench ...` with the options given on the command line (recorded with the results)."""
    words = ["tabcoder", "bench"]
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        value = ctx.params.get(param.name)
        if isinstance(param, click.Argument):
            words.append(str(value))
        elif source is click.core.ParameterSource.COMMANDLINE:
            option = cast(click.Option, param)  # a command's parameters are arguments and options
            if option.is_flag:
                words.append(param.opts[0] if value or not param.secondary_opts else param.secondary_opts[0])
            else:
                words += [max(param.opts, key=len), str(value)]
    return shlex.join(words)


def _suite(suite: str, answers: Path | None, cache: Path | None, tasks: str | None):
    from tabcoder.bench import ensure_builtin_suite, load_suite

    path = ensure_builtin_suite(cache) if suite == "builtin" else Path(suite)
    return load_suite(path, answers=answers).select(names(tasks))


@click.command("bench")
@click.argument("suite")
@click.option("--answers", type=click.Path(path_type=Path), help="Folder of <task>.csv test labels (default: SUITE/answers or ../answers).")
@click.option("--tasks", help="Comma-separated subset of the suite's tasks.")
@click.option("--models", default=RunConfig.model, show_default=True,
              help="Comma-separated model strings (see `tabcoder models`).")
@click.option("--strategies", default=RunConfig.strategy, show_default=True, help="Comma-separated strategies.")
# --seeds, --baselines and --out repeat BenchSettings' defaults: importing tabcoder.bench (its baselines load
# scikit-learn's ensembles) would add about 0.2 s to every `tabcoder` command's start.
@click.option("--seeds", type=int, default=1, show_default=True, help="Number of seeds (0 .. N-1) per cell.")
@click.option("--budget", help=f"Time budget of each LLM cell's whole run (e.g. 4m; 'none': no limit, then give "
                               f"--iterations)  [default: {DEFAULT_BUDGET_TEXT}]. The AutoML baselines (flaml, "
                               f"autogluon) get the wall time the task's LLM cells used; without LLM cells, this "
                               f"budget when given, else --baseline-budget.")
@click.option("--iterations", type=int, default=RunConfig.iterations,
              help="Maximum model attempts per LLM cell (default: as many as the budget allows).")
@click.option("--token-budget", type=int, help="Token budget per LLM cell.")
@click.option("--timeout", default=str(int(RunConfig.timeout)), show_default=True, help="Time limit per attempt.")
@click.option("--threads", type=int, default=RunConfig.threads, show_default=True, help="Threads per cell (llama.cpp, generated code, baselines).")
@click.option("--valid-fraction", type=float, default=RunConfig.valid_fraction, show_default=True)
@click.option("--example/--no-example", "show_example", default=RunConfig.show_example, show_default=True,
              help="Show the model the baseline script (RunConfig.show_example).")
@click.option("--base-url", help="OpenAI-compatible server shared by all workers (with --models openai:NAME).")
@click.option("--baselines", default="dummy,hgb,flaml", show_default=True,
              help="Comma-separated baselines (dummy, hgb, flaml, autogluon), or none.")
# BenchSettings.baseline_seconds is None; the command gives an AutoML baseline 60 s when nothing else sets its time.
@click.option("--baseline-budget", default="60s", show_default=True,
              help="The AutoML baselines' time when the bench has no LLM cells and no --budget.")
@click.option("--db", type=click.Path(path_type=Path), help="SQLite results file (default: OUT/bench.sqlite).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("bench-runs"), show_default=True,
              help="Folder for the cells' run folders.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
# --workers: cells at once (the executor's), not RunConfig.workers (attempts at once within a run).
@click.option("--workers", type=int, default=1, show_default=True, help="Cells run at once (local pool; CPUs of a local Ray instance).")
@click.option("--address", help="Ray cluster address (e.g. auto, ray://head:10001); default: start a local Ray instance.")
@click.option("--suite-cache", type=click.Path(path_type=Path), help="Where `builtin` is generated (default: $TABCODER_HOME/suites).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
@click.pass_context
@fail_cleanly
def bench_command(ctx: click.Context, suite: str, answers, tasks, models, strategies, seeds, budget, iterations, token_budget, timeout,
                  threads, valid_fraction, show_example, base_url, baselines, baseline_budget, db, out_dir, executor, workers,
                  address, suite_cache, quiet) -> None:
    """Run every task x model x strategy x seed of SUITE (a folder with tasks/ and answers/, or `builtin`),
    plus the baselines, into a SQLite results file. Resumable: finished cells are never re-run.

    Exit status: 0 when every cell ran, 1 when the harness failed on some cell, 2 for bad input."""
    from tabcoder.bench import BenchSettings, format_report, load_report, make_executor, run_bench

    the_suite = _suite(suite, answers, suite_cache, tasks)
    run_options = {"iterations": iterations, "token_budget": token_budget,
                   "timeout": parse_duration(timeout), "threads": threads, "valid_fraction": valid_fraction,
                   "show_example": show_example, "base_url": base_url}
    settings = BenchSettings(models=names(models), strategies=names(strategies), seeds=seeds,
                             baselines=[] if baselines.strip().lower() == "none" else names(baselines),
                             run_options={k: v for k, v in run_options.items() if v is not None}
                             | ({} if budget is None else {"time_budget": parse_duration(budget)}),
                             out_dir=out_dir, baseline_seconds=parse_duration(baseline_budget))
    db = db or out_dir / "bench.sqlite"
    summary = run_bench(the_suite, settings, db, make_executor(executor, workers=workers, address=address),
                        command=_command_line(ctx), on_event=Progress(quiet))
    click.echo(format_report(load_report(db).report))
    click.echo(f"\nresults: {db}  (HTML page: tabcoder bench-report {db})", err=True)
    sys.exit(1 if summary.errors else 0)


@click.command("bench-report")
@click.argument("db", type=click.Path(path_type=Path))
@click.option("--html", "html_path", type=click.Path(path_type=Path), help="Where to write the HTML page (default: DB with .html).")
@click.option("--markdown", type=click.Path(path_type=Path), help="Also write the tables to this Markdown file.")
@fail_cleanly
def bench_report_command(db: Path, html_path: Path | None, markdown: Path | None) -> None:
    """Print the tables of the results file DB and write its self-contained HTML page with plots."""
    from tabcoder.bench import format_report, load_report, render_html

    loaded = load_report(db)
    text = format_report(loaded.report)
    click.echo(text)
    html_path = html_path or db.with_suffix(".html")
    html_path.write_text(render_html(loaded.report, title=f"tabcoder benchmark: {db.name}", commands=loaded.commands),
                         encoding="utf-8")
    if markdown:
        commands = "".join(f"`{c}`\n\n" for c in loaded.commands)
        markdown.write_text(commands + text + "\n", encoding="utf-8")
    click.echo(f"HTML report: {html_path}", err=True)
