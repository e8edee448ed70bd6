"""What every `tabcoder` command shares: typed errors become `error: ...` and their exit code, the task and
model options, and option defaults read from the configuration dataclasses."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
from pathlib import Path

import click

from tabcoder.config import RunConfig
from tabcoder.errors import TabcoderError


def fail_cleanly(command):
    """Typed errors become `error: ...` and their exit code; Ctrl-C exits 130; never a raw traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except TabcoderError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


def field_default(cls, name: str):
    """The default of the dataclass field `name` of `cls` (a default_factory is called), for a click option:
    the option then shows and uses what the library would use without it."""
    found = {f.name: f for f in dataclasses.fields(cls)}[name]
    if found.default is not dataclasses.MISSING:
        return found.default
    if found.default_factory is not dataclasses.MISSING:
        return found.default_factory()
    raise TypeError(f"{cls.__name__}.{name} has no default")


def param_default(function, name: str):
    """The default of the keyword `name` of a library function, for the click option that passes it."""
    default = inspect.signature(function).parameters[name].default
    if default is inspect.Parameter.empty:
        raise TypeError(f"{function.__qualname__}() has no default for {name}")
    return default


def names(text: str | None) -> list[str]:
    """The items of a comma-separated option value, stripped, empty ones left out."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def say(text: str) -> None:
    """One line to stderr (progress and notes; results go to stdout)."""
    click.echo(text, err=True)


def task_options(command):
    """The options that override what a task's files say (or what is inferred from them)."""
    options = [
        click.option("--target", help="Target column (default: inferred from the sample submission or the test file)."),
        click.option("--id", "id_column", help="Id column (default: inferred, or generated)."),
        click.option("--task-type", type=click.Choice(["binary", "multiclass", "regression"]),
                     help="Default: inferred from the target."),
        click.option("--metric", help="accuracy, balanced_accuracy, f1, macro_f1, roc_auc, log_loss, rmse, mse, mae, "
                                      "rmsle, r2 (default: the task's, or inferred)."),
        click.option("--positive-label", help="Positive class for f1 / roc_auc / log_loss on binary tasks."),
        click.option("--test", "test_path", type=click.Path(path_type=Path), help="Test table, when TASK is one file."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


MODEL_HELP = ("local, local:qwen2.5-coder-1.5b, local:qwen2.5-coder-0.5b, llamacpp:PATH.gguf, openai:MODEL, "
              "hf:PATH[,adapter=PATH], replay:FILE.jsonl (see `tabcoder models`)")


def model_options(command):
    """--model and --base-url, as every command that talks to one model takes them."""
    command = click.option("--base-url", help="OpenAI-compatible server URL (default: $OPENAI_BASE_URL).")(command)
    return click.option("--model", default=RunConfig.model, show_default=True, help=MODEL_HELP)(command)
