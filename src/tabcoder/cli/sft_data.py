"""The `data` command group (mounted as `tabcoder sft data`): a thin layer over `tabcoder.sft.data` and
`tabcoder.sft.distill`.

Both commands write into a new (or empty) folder: `train.jsonl` and `eval.jsonl` (canonical examples),
`manifest.json` (what was read and kept; for `distill`, the held-out tasks that evaluation reads), and
LLaMA-Factory files (`tabcoder_<split>.json` plus `dataset_info.json`). Typed errors become `error: ...`
and exit 2 through `common.fail_cleanly`.
"""

from __future__ import annotations

import random
from pathlib import Path

import click

import tabcoder.sft.data as sft_data
import tabcoder.sft.distill as sft_distill
from tabcoder.cli.common import fail_cleanly, names, param_default, say
from tabcoder.errors import ConfigError


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"output folder {out} already exists and is not empty; choose a new --out")




@click.group("data")
def data_group() -> None:
    """Make fine-tuning data: import instruction files, or distill verified solutions from tabcoder runs."""


@data_group.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["auto", "alpaca", "sharegpt"]),
              default=param_default(sft_data.import_file, "fmt"), show_default=True,
              help="Record format; sharegpt also accepts OpenAI-style `messages`.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="New folder for the data.")
# --eval-fraction and --seed: this command splits the records itself (no library default to follow).
@click.option("--eval-fraction", type=float, default=0.0, show_default=True,
              help="Fraction of the records (seeded) written to eval.jsonl instead of train.jsonl.")
@click.option("--seed", type=int, default=0, show_default=True)
@fail_cleanly
def import_command(files: tuple[Path, ...], fmt: str, out: Path, eval_fraction: float, seed: int) -> None:
    """Convert alpaca / ShareGPT JSON or JSONL FILES into canonical examples in OUT."""
    _check_out(out)
    if not 0 <= eval_fraction < 1:
        raise ConfigError(f"--eval-fraction must be in [0, 1), not {eval_fraction}")
    examples, sources = [], []
    for path in files:
        found = sft_data.import_file(path, fmt)
        examples += found
        sources.append({"path": str(path), "format": found[0].meta["format"], "records": len(found)})
    splits = {"train": examples}
    if eval_fraction:
        if len(examples) < 2:
            raise ConfigError(f"--eval-fraction needs at least 2 records, found {len(examples)}")
        count = min(max(1, round(eval_fraction * len(examples))), len(examples) - 1)
        held_out = set(random.Random(seed).sample(range(len(examples)), count))
        splits = {"train": [e for i, e in enumerate(examples) if i not in held_out],
                  "eval": [e for i, e in enumerate(examples) if i in held_out]}
    manifest = {"command": "import", "format": fmt, "sources": sources, "eval_fraction": eval_fraction,
                "seed": seed, "examples": {split: len(items) for split, items in splits.items()}}
    sft_data.write_data(out, splits, manifest)
    click.echo(", ".join(f"{split}: {len(items)} examples" for split, items in splits.items()) + f" in {out}", err=True)


@data_group.command("distill")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="New folder for the data.")
@click.option("--within", type=float, help="Keep attempts within this fraction of their task's best score [0.1].")
@click.option("--all-valid", is_flag=True, help="Keep every valid attempt, whatever its score.")
@click.option("--repairs/--no-repairs", default=param_default(sft_distill.distill, "include_repairs"), show_default=True,
              help="Keep repairs of failed scripts.")
@click.option("--eval-tasks", help="Comma-separated tasks held out for evaluation (eval.jsonl).")
@click.option("--eval-fraction", type=float, default=param_default(sft_distill.distill, "eval_fraction"),
              show_default=True, help="Fraction of the tasks (seeded, at least one) held out for evaluation.")
@click.option("--model", "models", multiple=True, help="Keep only runs of this model string (repeatable).")
@click.option("--seed", type=int, default=param_default(sft_distill.distill, "seed"), show_default=True)
@click.option("--no-example-copies", is_flag=True,
              help="Also keep a copy of each example with the prompt a --no-example run shows (no example script).")
@click.option("--from-scratch", is_flag=True,
              help="Also keep, once per verified script, the first prompt of a --no-example --no-baseline run on "
                   "its task with the whole script as the reply.")
@click.option("--near-copy", type=float,
              help=f"Leave out improvements whose whole-script reply is at least this similar to the script they "
                   f"improve (e.g. {sft_distill.NEAR_COPY}); edit replies are kept.")
@fail_cleanly
def distill_command(runs: tuple[Path, ...], out: Path, within: float | None, all_valid: bool, repairs: bool,
                    eval_tasks: str | None, eval_fraction: float, models: tuple[str, ...], seed: int,
                    no_example_copies: bool, from_scratch: bool, near_copy: float | None) -> None:
    """Turn the verified scripts in RUNS (run folders, or folders containing them) into examples in OUT,
    split by task so that held-out tasks never reach training."""
    _check_out(out)
    if all_valid and within is not None:
        raise ConfigError("give --within or --all-valid, not both")
    # --all-valid: no score filter; neither option: distill's own default fraction
    within_option = {"within": None} if all_valid else ({} if within is None else {"within": within})
    result = sft_distill.distill(list(runs), **within_option, include_repairs=repairs, eval_tasks=names(eval_tasks),
                                 eval_fraction=eval_fraction, models=list(models) or None, seed=seed,
                                 no_example_copies=no_example_copies, from_scratch=from_scratch,
                                 near_copy=near_copy)
    summary = dict(result.summary, command="distill")
    sft_data.write_data(out, {"train": result.train, "eval": result.eval}, summary)
    say(f"{summary['runs_read']} runs read ({len(summary['runs_skipped'])} skipped), "
        f"{summary['attempts_seen']} attempts, {summary['kept']} kept: "
        f"train {summary['examples']['train']}, eval {summary['examples']['eval']}")
    for task, entry in summary["per_task"].items():
        best = f"best {entry['metric']} {entry['best_score']:.6g}" if "best_score" in entry else "no valid attempt"
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(entry["by_kind"].items()))
        say(f"  {task} [{entry['split']}]: {entry['kept']} kept" + (f" ({kinds})" if kinds else "") + f"; {best}")
    say("dropped: " + ", ".join(f"{reason.replace('_', ' ')} {n}" for reason, n in summary["dropped"].items()))
    for skip in summary["runs_skipped"]:
        say(f"  skipped {skip['run']}: {skip['reason']}")
    say(f"written to {out}")
