"""`tabcoder resume` and `tabcoder report`: continue an interrupted run from its journal, and rebuild a
run's report.html. A thin layer over `tabcoder.runner.resume` and `tabcoder.report.write_report`; progress
lines and the result are printed as `tabcoder run` prints them."""

from __future__ import annotations

from pathlib import Path

import click

from tabcoder.cli.common import fail_cleanly
from tabcoder.cli.progress import Progress
from tabcoder.cli.run import finish, print_result
from tabcoder.config import ISOLATIONS


@click.command("resume")
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--iterations", type=int, help="Raise the attempt budget (counts the attempts already made).")
@click.option("--time-budget", help="Raise the time budget of the whole run (counts the time already spent), e.g. 20m.")
@click.option("--token-budget", type=int, help="Raise the token budget (counts the tokens already spent).")
@click.option("--workers", type=int, help="Attempts evaluated at once.")
@click.option("--timeout", help="Time limit per attempt (seconds, or 5m).")
@click.option("--llm-timeout", help="Time limit per model call (seconds, or 5m).")
@click.option("--isolation", type=click.Choice(ISOLATIONS), help="Sandbox wall: auto, strict or reduced (see run --help).")
@click.option("--model", help="Another model string (default: the run's own model).")
@click.option("--base-url", help="OpenAI-compatible server URL.")
@click.option("--answers", type=click.Path(path_type=Path), help="CSV of true test labels: report the test score.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@fail_cleanly
def resume_command(run_dir: Path, quiet: bool, as_json: bool, **overrides) -> None:
    """Continue the interrupted (Ctrl-C, kill -9, crash) or finished run in RUN_DIR from its journal.

    Attempts already graded are kept, attempts written but not graded are graded, none is written again;
    the search goes on until the run's budgets (raised by the options) are spent, then the final solution
    is chosen, refit and written as usual. Exit status as for `tabcoder run`.
    """
    from tabcoder.runner import resume

    result = resume(run_dir, on_event=Progress(quiet), **overrides)
    print_result(result, as_json)
    finish(result)


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@fail_cleanly
def report_command(run_dir: Path) -> None:
    """Rebuild RUN_DIR/report.html from the run's journal and run.json (works on unfinished runs too)."""
    from tabcoder.report import write_report

    click.echo(str(write_report(run_dir)))
