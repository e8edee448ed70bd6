"""`tabcoder predict`: the delivered solution of a finished run applied to new rows, in the sandbox.

A thin layer over `tabcoder.prediction`: the new rows are checked against the task's feature columns (bad
input exits 2 with what to fix), predicted with the fitted model the solution saved (or by re-running it when
it saved none), and written in the submission's format; the file is never written over unless --force."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from tabcoder.cli.common import fail_cleanly, say
from tabcoder.config import ISOLATIONS


def _default_out(run_dir: Path, new: Path) -> Path:
    """RUN_DIR/predictions/<NEW's name>.csv, numbered when taken."""
    folder = run_dir / "predictions"
    stem = new.name.split(".")[0] or "predictions"
    for n in range(1000):
        candidate = folder / (f"{stem}.csv" if n == 0 else f"{stem}-{n}.csv")
        if not candidate.exists():
            return candidate
    return folder / f"{stem}-{n + 1}.csv"


@click.command("predict")
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.argument("new", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False),
              help="Where to write the predictions (default: RUN_DIR/predictions/<NEW's name>.csv).")
@click.option("--force", is_flag=True, help="Replace the --out file when it exists.")
@click.option("--timeout", help="Time limit for the prediction (seconds, or 5m; default: twice the run's "
                                "per-attempt limit).")
@click.option("--isolation", type=click.Choice(ISOLATIONS), help="Sandbox wall (default: the run's).")
@fail_cleanly
def predict_command(run_dir: Path, new: Path, out: Path | None, force: bool, timeout: str | None,
                    isolation: str | None) -> None:
    """Predict the rows of NEW (CSV, Parquet, XLSX, ARFF...) with the solution of the run in RUN_DIR.

    NEW holds the task's feature columns (and its id column; without one the rows are numbered). The
    predictions are written in the columns and spelling of the task's submission. Exit status: 0 when the
    predictions were written, 2 for bad input, 1 when the solution failed on the new rows.
    """
    from tabcoder.config import parse_duration
    from tabcoder.errors import ConfigError
    from tabcoder.prediction import load
    from tabcoder.sandbox import LocalSandbox

    solution = load(run_dir)
    options: dict[str, Any] = {}
    if timeout is not None:
        seconds = parse_duration(timeout)
        if seconds is None or seconds <= 0:
            raise ConfigError(f"--timeout must be a positive duration such as 90 or 5m (got {timeout!r})")
        options["timeout"] = seconds
    if isolation is not None:
        config = solution.meta.get("config", {})
        options["sandbox"] = LocalSandbox(memory_mb=int(config.get("memory_mb", 4096)),
                                          disk_mb=int(config.get("disk_mb", 2048)),
                                          threads=int(config.get("threads", 1)), isolation=isolation)
    out = out or _default_out(run_dir, new)
    prediction = solution.predict_file(new, out, overwrite=force, **options)
    for note in prediction.notes:
        say(f"note: {note}")
    say(f"{len(prediction.table)} rows predicted ({prediction.mode}, {prediction.seconds:.1f} s)")
    click.echo(str(out))
