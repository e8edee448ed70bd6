"""Typed errors. Each message says what was wrong and what to do; only the CLI turns them into exit codes."""

from __future__ import annotations


class TabcoderError(Exception):
    """Base class. `exit_code` is what the CLI exits with."""

    exit_code = 2


class TaskError(TabcoderError):
    """The task (files, columns, target, metric) cannot be used as given."""


class ConfigError(TabcoderError):
    """An option or setting is invalid (unknown metric, bad budget, ...)."""


class BackendError(TabcoderError):
    """A model string is unknown or its backend cannot be used here (missing extra, missing key, ...)."""


class LLMError(TabcoderError):
    """A call to a usable backend failed after its retries (server down, timeout)."""

    exit_code = 1


class SandboxError(TabcoderError):
    """The harness could not run generated code at all (not the code's fault)."""

    exit_code = 1


class RunDirError(TabcoderError):
    """A run directory is missing, incomplete, or would overwrite something."""
