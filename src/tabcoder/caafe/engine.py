"""The CAAFE loop: the model proposes one feature at a time as pandas code with its reason; the code runs in
the sandbox on the feature columns of the fit rows (never the target); repeated K-fold CV of a fast base
model compares the frame with and without it on the same folds; the feature is kept only when the task's
metric improves by at least `min_gain` (relative) with a paired t statistic of at least `min_t`; the model
is told the outcome (or the error) and proposes the next one.

Differences from the original CAAFE (Hollmann, Mueller, Hutter, 2023), on purpose: classification and
regression; the task's own metric, direction-aware; stratified repeated K-fold (plain repeated K-fold for
regression); code runs in a child process with a timeout instead of `exec` behind an AST whitelist;
drops and in-place edits as well as additions; a check that a feature depends only on its own row;
bounded retries when the model cannot be reached; a cap on kept features.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, cast

import pandas as pd

from tabcoder.backends import Backend, Completion
from tabcoder.caafe.code import BlockError, FeatureBlock, compose, parse_reply
from tabcoder.caafe.cv import BASE_MODELS, CrossValidator, CvScore
from tabcoder.caafe.execution import apply_in_sandbox
from tabcoder.caafe.messages import ProposalPrompts
from tabcoder.caafe.result import CaafeResult, Proposal, fmt_value
from tabcoder.errors import ConfigError, LLMError, SandboxError, TaskError
from tabcoder.events import CaafeEnd, CaafeProposal, CaafeStart, emit_event
from tabcoder.prompting import normalise_code
from tabcoder.sandbox import Sandbox
from tabcoder.task import Task

log = logging.getLogger(__name__)

EventHandler = Callable[[str, dict], None]
_TEXT_ARITHMETIC = re.compile(r"not supported for dtype '(?:str|object|string)'|unsupported operand type|"
                              r"can't multiply sequence|could not convert string to float|can only concatenate str")
TEMPERATURE_STEP = 0.25
MAX_TEMPERATURE = 1.0


@dataclass
class CaafeSettings:
    """How CAAFE searches and decides. Defaults measured on the shared tasks (see docs/caafe.md)."""

    max_kept: int | None = None  # stop once this many proposals were kept
    min_gain: float = 0.0025  # relative improvement of the mean CV score needed to keep a feature
    min_t: float = 1.5  # paired t statistic of the per-fold gains needed (a consistency check, see cv.py)
    folds: int = 5
    repeats: int = 5
    base_model: str = "hgb"  # "hgb" (HistGradientBoosting) or "rf" (a small random forest)
    max_rows: int | None = 10_000  # cross-validate on a stratified sample of at most this many rows
    timeout: float = 60.0  # seconds per sandbox run of the feature code
    check_rows: bool = True  # reject features whose values depend on the other rows
    llm_retries: int = 2  # extra tries per proposal when the model cannot be reached
    retry_wait: float = 2.0  # seconds before the first retry (doubled each time)
    temperature: float = 0.5
    max_tokens: int = 400
    use_description: bool = True

    def validate(self) -> None:
        checks = [
            (self.max_kept is None or self.max_kept >= 1, f"max_kept must be at least 1 (got {self.max_kept})"),
            (self.min_gain >= 0, f"min_gain must not be negative (got {self.min_gain})"),
            (self.folds >= 2, f"CAAFE needs at least 2 folds (got {self.folds})"),
            (self.repeats >= 1, f"CAAFE needs at least 1 repeat (got {self.repeats})"),
            (self.base_model in BASE_MODELS, f"base model must be one of {', '.join(BASE_MODELS)} "
                                             f"(got {self.base_model!r})"),
            (self.max_rows is None or self.max_rows >= 50, f"max_rows must be at least 50 (got {self.max_rows})"),
            (self.timeout > 0, f"the CAAFE timeout must be positive (got {self.timeout})"),
            (self.llm_retries >= 0, f"llm_retries must not be negative (got {self.llm_retries})"),
            (self.max_tokens >= 64, f"max_tokens must be at least 64 (got {self.max_tokens})"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


def run_caafe(task: Task, fit: pd.DataFrame, *, backend: Backend, sandbox: Sandbox, n_features: int,
              seed: int = 0, settings: CaafeSettings | None = None, workdir: Path | None = None,
              on_event: EventHandler | None = None, clock: Callable[[], float] = time.monotonic,
              sleep: Callable[[float], None] = time.sleep) -> CaafeResult:
    """Ask the model for `n_features` feature proposals on `fit` (id, features and target of the rows to
    learn from: in a run, the fit part of the split, never the validation rows) and keep those that improve
    the task's metric in cross-validation. Sandbox workspaces go under `workdir` (a temporary folder when
    None). Raises LLMError only when the model could not be reached for the first proposal."""
    settings = settings or CaafeSettings()
    settings.validate()
    _check_inputs(task, fit, n_features)
    with _workspaces(workdir) as root:
        search = _Search(task, fit, backend=backend, sandbox=sandbox, settings=settings, seed=seed, root=root,
                         emit=on_event or (lambda kind, data: None), clock=clock, sleep=sleep)
        return search.run(n_features)


def check_n_features(n_features: int) -> None:
    """ConfigError unless `n_features` (the number of proposals to ask for) is a positive integer."""
    if not isinstance(n_features, int) or isinstance(n_features, bool) or n_features < 1:
        raise ConfigError(f"the number of CAAFE feature proposals must be an integer >= 1 (got {n_features!r}); "
                          "e.g. --features 5")


def _check_inputs(task: Task, fit: pd.DataFrame, n_features: int) -> None:
    check_n_features(n_features)
    missing = [c for c in (task.target, *task.feature_columns) if c not in fit.columns]
    if missing:
        raise TaskError(f"the rows given to CAAFE lack the column(s) {', '.join(missing[:10])}; pass the task's "
                        "fit rows with the id, every feature and the target")


@contextmanager
def _workspaces(workdir: Path | None) -> Iterator[Path]:
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        yield Path(workdir)
        return
    with tempfile.TemporaryDirectory(prefix="tabcoder-caafe-") as temporary:
        yield Path(temporary)


@dataclass
class _State:
    """The accepted features so far and the CV score and frame they give."""

    blocks: list[FeatureBlock]
    frame: pd.DataFrame
    score: CvScore


@dataclass
class _Search:
    """One CAAFE run: proposals, sandbox runs and decisions; state lives here, not in module globals."""

    task: Task
    fit: pd.DataFrame
    backend: Backend
    sandbox: Sandbox
    settings: CaafeSettings
    seed: int
    root: Path
    emit: EventHandler
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    proposals: list[Proposal] = field(default_factory=list)

    def __post_init__(self) -> None:
        s = self.settings
        self.cv = CrossValidator(self.task, self.fit, folds=s.folds, repeats=s.repeats, seed=self.seed,
                                 base_model=s.base_model, max_rows=s.max_rows)
        self.prompts = ProposalPrompts(self.task, self.cv.data, folds=s.folds, use_description=s.use_description,
                                       seed=self.seed)

    # -- the loop ------------------------------------------------------------------------------------
    def run(self, n_features: int) -> CaafeResult:
        started = self.clock()
        state = self._base_state()
        base = state.score
        emit_event(self.emit, CaafeStart(task=self.task, n_features=n_features, base=base.score,
                                         rows=len(self.cv.data)))
        stop_reason = f"{n_features} proposals made"
        for index in range(1, n_features + 1):
            if self.settings.max_kept is not None and len(state.blocks) >= self.settings.max_kept:
                stop_reason = f"{self.settings.max_kept} features kept (max_kept)"
                break
            try:
                completion = self._ask(state)
            except LLMError as exc:
                if not self.proposals:
                    raise
                stop_reason = f"the model failed: {exc}"
                log.warning("CAAFE stops early: %s", exc)
                break
            proposal, state = self._evaluate(index, completion, state)
            self.proposals.append(proposal)
            emit_event(self.emit, CaafeProposal(proposal=proposal, metric=self.task.metric))
        result = self._result(base, state, stop_reason, self.clock() - started, n_features)
        emit_event(self.emit, CaafeEnd(result=result))
        return result

    def _base_state(self) -> _State:
        """The features as given, round-tripped through the sandbox like every proposal (a failure here is
        the harness's, not the model's)."""
        run = apply_in_sandbox(compose([]), self.cv.features, sandbox=self.sandbox, workspace=self._workspace(0),
                               timeout=self.settings.timeout)
        if not run.ok:
            raise SandboxError(f"CAAFE could not run even the empty feature code in the sandbox: {run.error}. "
                               "Check that the sandbox's Python has pandas and pyarrow installed")
        return _State([], run.frame, self.cv.score(run.frame))

    # -- one proposal ----------------------------------------------------------------------------------
    def _ask(self, state: _State) -> Completion:
        """The model's next reply; retries (bounded, with a growing wait) when the model cannot be reached."""
        last = self.proposals[-1] if self.proposals else None
        messages = self.prompts.next(
            history=[f"({p.index}) {p.label}: {p.outcome(self.task.metric)}" for p in self.proposals],
            columns=list(state.frame.columns),
            last_error=last.error if last is not None else None,
            last_code=last.code if last is not None and last.error and not last.repeats else None)
        wait = self.settings.retry_wait
        for attempt in range(self.settings.llm_retries + 1):
            try:
                return self.backend.complete(messages, temperature=self._temperature(),
                                             max_tokens=self.settings.max_tokens, seed=self.seed + len(self.proposals))
            except LLMError as exc:
                if attempt == self.settings.llm_retries:
                    raise
                log.warning("CAAFE: the model failed (%s); retry %d of %d in %.0f s", exc, attempt + 1,
                            self.settings.llm_retries, wait)
                self.sleep(wait)
                wait *= 2
        raise AssertionError("unreachable")

    def _workspace(self, index: int) -> Path:
        """The sandbox workspace of proposal `index` (0: the features as given); leftovers of an interrupted
        run in the same folder are removed."""
        path = self.root / f"{index:03d}"
        shutil.rmtree(path, ignore_errors=True)
        return path

    def _temperature(self) -> float:
        """The sampling temperature, raised after each failed proposal in a row (a small model otherwise tends
        to repeat its broken code), at most `MAX_TEMPERATURE`."""
        streak = 0
        for proposal in reversed(self.proposals):
            if not proposal.error:
                break
            streak += 1
        ceiling = max(MAX_TEMPERATURE, self.settings.temperature)
        return min(self.settings.temperature + TEMPERATURE_STEP * streak, ceiling)

    def _evaluate(self, index: int, completion: Completion, state: _State) -> tuple[Proposal, _State]:
        started = self.clock()
        proposal = Proposal(index=index, code=None, prompt_tokens=completion.prompt_tokens,
                            completion_tokens=completion.completion_tokens, response=completion.text)
        try:
            block = parse_reply(completion.text)
        except BlockError as exc:
            proposal.code, proposal.error = exc.code, str(exc)
            return self._timed(proposal, started), state
        proposal.code, proposal.reason = block.code, block.reason
        proposal.repeats = self._repeated(block)
        if proposal.repeats is not None:
            proposal.error = f"this is the same code as proposal {proposal.repeats}; propose a different feature"
            return self._timed(proposal, started), state
        run = apply_in_sandbox(compose([*state.blocks, block]), self.cv.features, sandbox=self.sandbox,
                               workspace=self._workspace(index), timeout=self.settings.timeout,
                               check_rows=self.settings.check_rows, seed=self.seed)
        if run.error is not None:  # not run.ok
            proposal.error = self._with_hint(run.error)
            return self._timed(proposal, started), state
        frame = cast(pd.DataFrame, run.frame)  # a run without an error has its frame
        proposal.added = [c for c in frame.columns if c not in state.frame.columns]
        proposal.dropped = [c for c in state.frame.columns if c not in frame.columns]
        proposal.error = self._change_problem(proposal, frame, state.frame)
        if proposal.error:
            return self._timed(proposal, started), state
        return self._decide(proposal, block, frame, state, started)

    def _with_hint(self, error: str) -> str:
        """The error plus a fix for the mistakes small models make most."""
        missing = re.match(r"KeyError: ['\"](.+?)['\"]", error)
        if missing and missing.group(1) in (self.task.target, self.task.id_column):
            return f"{error}. `{missing.group(1)}` is not in df (it is the task's target or id): do not use it"
        if missing:
            return f"{error}. df has no column `{missing.group(1)}`; use only the columns listed"
        if _TEXT_ARITHMETIC.search(error):
            return (f"{error}. A text column cannot be used in arithmetic: compare it with one of its values, "
                    "e.g. (df[\"col\"] == \"value\").astype(int)")
        return error

    def _change_problem(self, proposal: Proposal, frame: pd.DataFrame, before: pd.DataFrame) -> str | None:
        reserved = [c for c in proposal.added if c in (self.task.target, self.task.id_column)]
        if reserved:
            return (f"a new column is named `{reserved[0]}`, like the task's target or id; "
                    "give the feature its own name")
        if not proposal.added and not proposal.dropped and frame.equals(before):
            return "the code did not change df: add a new column (or drop one)"
        constant = [c for c in proposal.added if frame[c].nunique(dropna=False) <= 1]
        if constant:
            return (f"the new column `{constant[0]}` has the same value in every row, so it cannot help; "
                    "check the values you compare with (see the sample rows)")
        return None

    def _repeated(self, block: FeatureBlock) -> int | None:
        """The index of an earlier proposal with the same code (comments and blank lines aside), if any."""
        normalised = normalise_code(block.code)
        for earlier in self.proposals:
            if earlier.code and normalise_code(earlier.code) == normalised:
                return earlier.index
        return None

    def _decide(self, proposal: Proposal, block: FeatureBlock, frame: pd.DataFrame, state: _State,
                started: float) -> tuple[Proposal, _State]:
        score = self.cv.score(frame)
        proposal.score_without, proposal.score_with = state.score.mean, score.mean
        proposal.gain, proposal.t = score.gain_over(state.score), score.paired_t(state.score)
        proposal.kept = (proposal.gain is not None and proposal.t is not None
                         and proposal.gain >= self.settings.min_gain and proposal.t >= self.settings.min_t)
        self._timed(proposal, started)
        if proposal.kept:
            return proposal, _State([*state.blocks, block], frame, score)
        return proposal, state

    def _timed(self, proposal: Proposal, started: float) -> Proposal:
        proposal.seconds = self.clock() - started
        return proposal

    def _result(self, base: CvScore, state: _State, stop_reason: str, seconds: float, n_features: int) -> CaafeResult:
        title = (f"Features for {self.task.name} found by CAAFE: {len(state.blocks)} of {len(self.proposals)} "
                 f"proposals kept; base-model CV {self.task.metric} {fmt_value(base.mean)} -> "
                 f"{fmt_value(state.score.mean)}.")
        spec = self.task.metric_spec
        return CaafeResult(
            task=self.task.name, target=self.task.target, id_column=self.task.id_column, metric=spec.name,
            greater_is_better=spec.greater_is_better,
            feature_code=compose(state.blocks, title=title), blocks=list(state.blocks), proposals=self.proposals,
            base_score=base.mean, final_score=state.score.mean, columns_in=list(self.task.feature_columns),
            columns_out=list(state.frame.columns), stop_reason=stop_reason, seconds=seconds,
            settings={**asdict(self.settings), "n_features": n_features, "seed": self.seed,
                      "cv_rows": len(self.cv.data)})
