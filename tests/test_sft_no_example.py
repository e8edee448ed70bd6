"""No-example copies of distilled examples: the prompt a `--no-example` run would show, exactly."""

from __future__ import annotations

from pathlib import Path

import pytest

from tabcoder import RunConfig, run
from tabcoder.backends import ScriptedBackend
from tabcoder.grading import make_split
from tabcoder.profile import profile_task
from tabcoder.prompting import PromptBuilder, fence, without_example
from tabcoder.sft.distill import distill
from tabcoder.task import load_task

from support import WINE


def _builders(style: str) -> tuple[PromptBuilder, PromptBuilder]:
    task = load_task(WINE)
    split = make_split(task)
    profile = profile_task(task, split.fit, split.valid)
    return (PromptBuilder(task, profile, timeout=60, style=style),
            PromptBuilder(task, profile, timeout=60, style=style, show_example=False))


@pytest.mark.parametrize("style", ["chat", "single"])
def test_without_example_gives_the_no_example_prompt_of_every_call(style: str) -> None:
    shown, hidden = _builders(style)
    approach = shown.approaches()[0]
    calls = {
        "draft": lambda b: b.draft(),
        "revise": lambda b: b.revise("x = 1", "it failed", failed=True, reflections=["r"], history=["h"]),
        "improve": lambda b: b.improve("x = 1", "score 0.9", idea="scale", memory="m"),
        "draft_with": lambda b: b.draft_with(approach, ["other"]),
        "debug": lambda b: b.debug("x = 1", "it failed", reflection="r", memory="m"),
    }
    for name, call in calls.items():
        with_example = call(shown)
        assert "A correct baseline script" in str(with_example), name
        assert without_example(with_example) == call(hidden), name
        assert without_example(call(hidden)) is None, name


def test_distill_adds_no_example_copies_of_real_run_prompts(tmp_path: Path) -> None:
    shown, hidden = _builders("chat")
    script = shown.example()
    result = run(WINE, config=RunConfig(baseline=False, out_dir=tmp_path / "runs", iterations=1, timeout=60,
                                        strategy="reflexion"), backend=ScriptedBackend([fence(script)]))
    assert result.valid_attempts == 1
    plain = distill([tmp_path / "runs"])
    both = distill([tmp_path / "runs"], no_example_copies=True)
    assert len(plain.train) == 1 and len(both.train) == 2
    original, copy = both.train
    assert original.messages == plain.train[0].messages
    assert copy.messages[:-1] == hidden.draft()  # what a --no-example run asks, word for word
    assert copy.messages[-1] == original.messages[-1] == {"role": "assistant", "content": fence(script)}
    assert copy.meta["prompt"] == "no-example" and "prompt" not in original.meta
