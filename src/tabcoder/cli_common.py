"""What every `tabcoder` command shares: typed errors become `error: ...` and their exit code."""

from __future__ import annotations

import functools
import sys

import click

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
