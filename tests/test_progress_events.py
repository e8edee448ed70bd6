"""Every event kind the library emits is one the progress printer knows (handled or silent), and an unknown
kind is an error under TABCODER_STRICT_EVENTS, not a line silently dropped; so is an event whose data does not
carry exactly the fields of its dataclass in `tabcoder.events`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import tabcoder
from tabcoder import RunConfig, run
from tabcoder.cli.progress import KNOWN_KINDS, SILENT_KINDS, Progress, UnknownEvent, WrongEventFields, kind_problems
from tabcoder.events import EVENTS, AttemptStart, Event, RunEnd, event_data, field_names

from support import WINE, replay_file, variant

EMIT = re.compile(r"\b(?:emit|on_event|say|_emit)\(\s*\"([a-z_]+)\"")
# an event built for emitting: `RunStart(` ... (the library passes it to `emit_event`)
BUILD = re.compile(r"\b(" + "|".join(cls.__name__ for cls in EVENTS.values()) + r")\(")
KIND_OF = {cls.__name__: kind for kind, cls in EVENTS.items()}


def emitted_kinds() -> set[str]:
    root = Path(tabcoder.__file__).parent
    found: set[str] = set()
    for path in root.rglob("*.py"):
        if "cli" not in path.relative_to(root).parts and path.name != "events.py":
            text = path.read_text(encoding="utf-8")
            found |= set(EMIT.findall(text)) | {KIND_OF[name] for name in BUILD.findall(text)}
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


def test_every_event_kind_is_handled_or_silent_and_every_handler_has_an_event():
    assert kind_problems() == []
    assert KNOWN_KINDS == set(EVENTS) and SILENT_KINDS <= KNOWN_KINDS
    assert emitted_kinds() == set(EVENTS), "an event class the library never builds, or a kind built elsewhere"
    for kind, cls in EVENTS.items():
        assert cls.KIND == kind and issubclass(cls, Event)


@pytest.mark.parametrize("quiet", [True, False])
def test_a_missing_or_extra_field_is_an_error_in_strict_mode(monkeypatch, quiet):
    monkeypatch.setenv("TABCODER_STRICT_EVENTS", "1")
    good = {"index": 1, "kind": "draft", "parent": None}
    Progress(quiet=True)("attempt_start", good)
    with pytest.raises(WrongEventFields, match=r"'attempt_start'.*missing parent"):
        Progress(quiet=quiet)("attempt_start", {"index": 1, "kind": "draft"})
    with pytest.raises(WrongEventFields, match=r"'attempt_start'.*unexpected parnet"):
        Progress(quiet=quiet)("attempt_start", {**good, "parnet": 2})
    with pytest.raises(WrongEventFields, match=r"missing parent; unexpected parnet"):
        Progress(quiet=quiet)("attempt_start", {"index": 1, "kind": "draft", "parnet": 2})
    # the printer's `**_` handlers are checked too
    with pytest.raises(WrongEventFields, match=r"'step'.*missing total"):
        Progress(quiet=True)("step", {"step": 1, "loss": 0.5, "lr": 1e-4, "grad_norm": 1.0, "tokens": 9,
                                      "learned_tokens": 3, "seconds": 0.1})
    monkeypatch.setenv("TABCODER_STRICT_EVENTS", "0")
    Progress(quiet=True)("attempt_start", {"index": 1, "kind": "draft"})  # not checked outside strict mode


def test_event_data_is_the_fields_shallow():
    actions: list = [("draft", None)]
    data = event_data(EVENTS["round_start"](round=1, actions=actions))
    assert data == {"round": 1, "actions": [("draft", None)]} and data["actions"] is actions
    assert list(event_data(AttemptStart(index=2, kind="debug", parent=1))) == list(field_names(AttemptStart))
    with pytest.raises(TypeError):
        AttemptStart(index=2, kind="debug")  # type: ignore[call-arg]  # a missing field fails where it is built


def test_a_run_emits_events_whose_data_are_their_dataclasses_fields(tmp_path):
    replay = replay_file(tmp_path, *(f"```python\n{variant(n)}\n```" for n in range(1, 4)), "a reflection")
    events: list[tuple[str, dict]] = []
    printer = Progress(quiet=True, strict=True)

    def record(kind: str, data: dict) -> None:
        events.append((kind, data))
        printer(kind, data)

    result = run(WINE, config=RunConfig(baseline=False, out_dir=tmp_path / "runs", model=f"replay:{replay}", iterations=2,
                                        timeout=60), on_event=record)
    kinds = [kind for kind, _ in events]
    assert {"run_start", "attempt_start", "llm_start", "llm_done", "llm", "attempt_end", "final_start",
            "final_end", "run_end"} <= set(kinds), kinds
    for kind, data in events:
        assert tuple(data) == field_names(EVENTS[kind]), kind
    run_start = dict(events)["run_start"]
    assert run_start["task"] is result.task and run_start["run_dir"] == result.run_dir  # shallow, not copied
    assert dict(events)["run_end"] == event_data(RunEnd(result=result))
