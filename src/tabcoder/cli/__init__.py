"""The `tabcoder` command line. A thin layer: each command builds the library's configuration from its
options, calls the library, prints progress (`progress.Progress`, one printer for every command) and turns
typed errors into `error: ...` and exit codes (`common.fail_cleanly`: 2 for bad input, 1 for failures at
run time).

This module holds the `main` group and registers every command, in one place; the commands live in one
module per family: `run` (run, models), `predict`, `search` (resume, report), `caafe`, `bench` (bench, bench-report),
`sft` (sft train, sft export, sft self-train) and `sft_data` (sft data import, sft data distill).
"""

from __future__ import annotations

import logging

import click

from tabcoder.cli.bench import bench_command, bench_report_command
from tabcoder.cli.caafe import caafe_command
from tabcoder.cli.predict import predict_command
from tabcoder.cli.run import models_command, run_command
from tabcoder.cli.search import report_command, resume_command
from tabcoder.cli.sft import export_command, selftrain_command, sft_group, train_command
from tabcoder.cli.sft_data import data_group

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="tabcoder")
@click.option("-v", "--verbose", is_flag=True, help="Show debug logging.")
def main(verbose: bool) -> None:
    """An LLM writes the training code for a tabular task; tabcoder runs it in a sandbox, grades it on
    labels the code never sees, and lets the model reflect and iterate."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


for command in (run_command, predict_command, models_command, resume_command, report_command, caafe_command, bench_command,
                bench_report_command, sft_group):
    main.add_command(command)
for command in (data_group, train_command, export_command, selftrain_command):  # `sft data` keeps its own import / distill
    sft_group.add_command(command)
del command
