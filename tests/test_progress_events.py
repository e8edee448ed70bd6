"""Every event kind the library emits is one the progress printer knows (handled or silent), and an unknown
kind is an error under TABCODER_STRICT_EVENTS, not a line silently dropped."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import tabcoder
from tabcoder.cli.progress import KNOWN_KINDS, Progress, UnknownEvent

EMIT = re.compile(r"\b(?:emit|on_event|say|_emit)\(\s*\"([a-z_]+)\"")


def emitted_kinds() -> set[str]:
    root = Path(tabcoder.__file__).parent
    found: set[str] = set()
    for path in root.rglob("*.py"):
        if "cli" not in path.relative_to(root).parts:
            found |= set(EMIT.findall(path.read_text(encoding="utf-8")))
    return found


def test_the_printer_knows_every_event_the_library_emits():
    kinds = emitted_kinds()
    assert {"run_start", "attempt_end", "llm_start", "search_cut", "caafe_proposal", "cell_end", "train_start"} <= kinds
    assert kinds <= KNOWN_KINDS, f"events no printer handles: {sorted(kinds - KNOWN_KINDS)}"


def test_an_unknown_event_is_an_error_in_strict_mode(monkeypatch):
    monkeypatch.setenv("TABCODER_STRICT_EVENTS", "1")
    with pytest.raises(UnknownEvent, match="attempt_ended"):
        Progress(quiet=True)("attempt_ended", {})
    monkeypatch.setenv("TABCODER_STRICT_EVENTS", "0")
    Progress(quiet=True)("attempt_ended", {})  # a user's run never breaks over it
