"""What one run (or one resumed session of it) works with: `RunState`.

Scope: the collaborators (backend, sandbox, pool, clock, event handler), the task and its seeded split, the
journal and `run.json`'s contents, and the steps that must happen before the search: the data profile, the
CAAFE stage (on the fit rows only, after `run.json` exists, so an interrupted `--caafe` run can be resumed:
a finished stage is read back from `caafe/`), and the prompt builder. The search, the choice of the final
attempt and the refit are `tabcoder.runner`'s, `tabcoder.selection`'s and `tabcoder.final`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tabcoder.backends import Backend
from tabcoder.budget import TimePlan
from tabcoder.caafe import CaafeResult, include_feature_code, read_result, run_caafe, solution_guidance, write_outputs
from tabcoder.config import RunConfig
from tabcoder.evaluation import EvaluationPool
from tabcoder.grading import Split, make_split
from tabcoder.journal import Journal
from tabcoder.profile import profile_task
from tabcoder.prompting import PromptBuilder
from tabcoder.sandbox import Sandbox
from tabcoder.task import Task

EventHandler = Callable[[str, dict], None]


@dataclass
class RunState:
    """Everything one run (or one resumed session of it) works with. `prepare()` before the search."""

    task: Task
    config: RunConfig
    backend: Backend
    sandbox: Sandbox
    emit: EventHandler
    clock: Callable[[], float]
    answers: pd.Series | None
    run_dir: Path
    journal: Journal
    meta: dict
    started: float  # clock value at which the run's time began (earlier sessions included)
    pool: EvaluationPool
    split: Split = field(init=False)
    plan: TimePlan = field(init=False)
    builder: PromptBuilder | None = field(init=False, default=None)
    caafe: CaafeResult | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.split = make_split(self.task, seed=self.config.seed, valid_fraction=self.config.valid_fraction)
        growth = len(self.task.train) / max(1, len(self.split.fit))
        self.plan = TimePlan(self.config, growth, self.pool.workers, self.seconds_left)

    def prepare(self) -> PromptBuilder:
        """Profile the fit rows, run (or read back) the CAAFE stage, and build the prompts."""
        config, task = self.config, self.task
        profile = profile_task(task, self.split.fit, self.split.valid, seed=config.seed)
        self.caafe = self._caafe() if config.caafe else None
        uses_features = bool(self.caafe and self.caafe.kept and config.caafe_prompt == "usage")
        self.builder = PromptBuilder(task, profile, timeout=config.timeout, style=config.prompt_style,
                                     use_description=config.use_description, show_example=config.show_example,
                                     guidance=solution_guidance(self.caafe, config.caafe_prompt),
                                     uses_features=uses_features, script_in_user=config.edit_format != "whole")
        return self.builder

    def _caafe(self) -> CaafeResult:
        """The CAAFE stage, on the fit rows only (never the validation rows); a resumed run reads it back."""
        folder = self.run_dir / "caafe"
        if (folder / "caafe.json").is_file():
            return read_result(folder)
        result = run_caafe(self.task, self.split.fit, backend=self.backend, sandbox=self.sandbox,
                           n_features=self.config.caafe, seed=self.config.seed, workdir=folder / "proposals",
                           on_event=self.emit)
        write_outputs(result, folder)
        return result

    def script(self, code: str) -> str:
        """The script as it runs: with the accepted CAAFE function on top when it calls add_features."""
        return include_feature_code(self.caafe, code)

    def seconds_left(self) -> float | None:
        budget = self.config.time_budget
        return None if budget is None else self.started + budget - self.clock()
