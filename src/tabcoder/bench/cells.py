"""One cell of a benchmark: a task x system (model + strategy, or a baseline) x seed, and how it runs.

Scope: `BenchSettings` (what `tabcoder bench` was asked for), `CellSpec` (one cell, picklable, so a
process pool or a Ray worker can run it), `plan_cells` (the full matrix, baselines included), `TimeGiven`
(the wall time an AutoML baseline cell is given: the mean wall time of the LLM cells of its task and seed,
or a fixed budget when the bench runs no LLM cell; decided by the bench when it hands the cell out, see
`matrix.SameTime`), and `run_cell` (a cell run in whatever process the executor chose: `runner.run` for an
LLM cell, `baselines.run_baseline` for a baseline) returning a `CellOutcome` (for an LLM cell, with what its
run's attribution and journal say about the harness's baseline and the model's attempts). A cell's identity - its
key - is its suite, task, system, seed and a hash of the settings that change its result and differ from RunConfig's
defaults, so a changed budget is a new cell while a changed server URL, or an option given at its default,
is not. (The task settings pinned by a suite's meta.json are not in
the hash: after changing them, start a new results file.) An AutoML baseline's key names the LLM systems
(and their config hash) whose wall time it matches, not the seconds, which are known only when they ran.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import re
import traceback
from dataclasses import MISSING, dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tabcoder.bench.store import CellResult
from tabcoder.config import RunConfig
from tabcoder.bench.suite import Suite
from tabcoder.errors import TabcoderError

if TYPE_CHECKING:
    from tabcoder.runner import Result

log = logging.getLogger(__name__)

LLM, BASELINE = "llm", "baseline"
# RunConfig fields that decide where or how fast a cell runs, not what it produces: left out of its key.
_INFRASTRUCTURE = frozenset({"base_url", "out_dir", "threads"})
_EXTRA_VERSIONS = ("flaml", "lightgbm", "xgboost", "xgboost-cpu", "ray", "autogluon.tabular", "catboost")
SAME_TIME, FIXED = "same-as-llm", "fixed"  # TimeGiven.rule
_DEFAULTS = {f.name: f.default for f in fields(RunConfig) if f.default is not MISSING}
_MISSING = object()


@dataclass
class BenchSettings:
    """The matrix a bench runs. `run_options` are RunConfig fields shared by every LLM cell (iterations,
    time_budget, timeout, threads, base_url, ...); baselines use valid_fraction and threads. The AutoML
    baselines (flaml, autogluon) get the mean wall time of the LLM cells of the same task and seed; only when
    the bench runs no LLM cell (no models) do they get run_options' time_budget, else `baseline_seconds`,
    else 60 s."""

    models: list[str]
    strategies: list[str]
    seeds: int = 1
    baselines: list[str] = field(default_factory=lambda: ["dummy", "hgb", "flaml"])
    run_options: dict = field(default_factory=dict)
    out_dir: Path = Path("bench-runs")
    baseline_seconds: float | None = None  # the AutoML budget without LLM cells and without a time_budget


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80] or "x"


@dataclass
class CellSpec:
    suite: str
    task: str
    task_path: str
    answers_path: str
    overrides: dict  # task settings pinned by the suite's meta.json
    kind: str  # LLM | BASELINE
    model: str  # model string, or the baseline's name
    strategy: str  # "" for a baseline
    seed: int
    config: dict  # RunConfig fields (LLM) or baseline settings
    out_dir: str
    # AutoML baselines: the time the bench gives the cell when it hands it out (not part of its key)
    given: TimeGiven | None = None

    @property
    def system(self) -> str:
        return f"{self.model}/{self.strategy}" if self.kind == LLM else self.model

    @property
    def config_hash(self) -> str:
        """Hash of the settings that change the result and differ from RunConfig's defaults (so a new
        option, or an option given at its default value, keeps the keys of finished cells)."""
        relevant = {k: v for k, v in self.config.items()
                    if k not in _INFRASTRUCTURE and _DEFAULTS.get(k, _MISSING) != v}
        text = json.dumps([self.kind, self.model, self.strategy, relevant], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    @property
    def key(self) -> str:
        return f"{self.suite}/{self.task}/{self.system}/seed={self.seed}/{self.config_hash}"

    @property
    def cell_dir(self) -> Path:
        """The folder that receives this cell's run folders (a re-run adds a new one beside the old)."""
        return (Path(self.out_dir) / _slug(self.suite) / _slug(self.task) / _slug(self.system)
                / f"seed{self.seed}-{self.config_hash}")

    def identity(self) -> dict:
        return {"key": self.key, "suite": self.suite, "task": self.task, "kind": self.kind, "model": self.model,
                "strategy": self.strategy, "seed": self.seed, "config_hash": self.config_hash,
                "config": {**self.config, "overrides": self.overrides}}


@dataclass
class TimeGiven:
    """The wall time an AutoML baseline cell is given and where it comes from (stored with its result)."""

    seconds: float | None  # None: every LLM cell it matches failed; the cell is an error, re-run next bench
    rule: str  # SAME_TIME: the mean wall time of the task's LLM cells | FIXED: the bench runs no LLM cell
    source: dict = field(default_factory=dict)  # LLM cell key -> its seconds (or its status when not done)

    def result_fields(self) -> dict[str, Any]:
        """The CellResult fields that record it."""
        return {"time_given": self.seconds, "time_rule": self.rule,
                "time_source": json.dumps(self.source, sort_keys=True) if self.source else None}


def fixed_time(config: dict) -> TimeGiven:
    """The budget of an AutoML cell that matches no LLM cell: the bench's explicit budget, else 60 s."""
    from tabcoder.bench.baselines import DEFAULT_AUTOML_SECONDS

    return TimeGiven(float(config.get("time_budget") or DEFAULT_AUTOML_SECONDS), FIXED)


def _baseline_config(name: str, settings: BenchSettings, llm_systems: list[str]) -> dict:
    from tabcoder.bench.baselines import AUTOML

    config: dict[str, Any] = {"valid_fraction": settings.run_options.get("valid_fraction", 0.2),
                              "threads": settings.run_options.get("threads", 1)}
    if name in AUTOML:
        if llm_systems:  # its seconds are those of these systems' cells of the same task and seed
            config["same_time_as"] = llm_systems
        else:
            config["time_budget"] = settings.run_options.get("time_budget") or settings.baseline_seconds
    return config


def plan_cells(suite: Suite, settings: BenchSettings) -> list[CellSpec]:
    """Every cell: for each task and seed, the baselines that take no time budget (dummy, hgb), each
    model x strategy, then the AutoML baselines, which run after that task and seed's LLM cells."""
    from tabcoder.bench.baselines import AUTOML

    llm = [(model, strategy) for model in settings.models for strategy in settings.strategies]
    llm_systems = sorted({f"{model}/{strategy}@{_llm_hash(model, strategy, settings)}" for model, strategy in llm})
    cells = []
    for task in suite.tasks:
        # absolute paths: a Ray worker does not share the driver's working directory
        common: dict[str, Any] = {
            "suite": suite.name, "task": task.name, "task_path": str(Path(task.path).resolve()),
            "answers_path": str(Path(task.answers).resolve()), "overrides": dict(task.overrides),
            "out_dir": str(Path(settings.out_dir).resolve())}
        for seed in range(settings.seeds):
            baselines = [CellSpec(**common, kind=BASELINE, model=name, strategy="", seed=seed,
                                  config=_baseline_config(name, settings, llm_systems))
                         for name in settings.baselines]
            cells += [spec for spec in baselines if spec.model not in AUTOML]
            cells += [CellSpec(**common, kind=LLM, model=model, strategy=strategy, seed=seed,
                               config=dict(settings.run_options)) for model, strategy in llm]
            cells += [spec for spec in baselines if spec.model in AUTOML]
    return cells


def _llm_hash(model: str, strategy: str, settings: BenchSettings) -> str:
    return CellSpec("", "", "", "", {}, LLM, model, strategy, 0, dict(settings.run_options), "").config_hash


# =========================================================================== running a cell


@dataclass
class CellOutcome(CellResult):
    """What a cell produced, as returned by a worker. `status`: done | error | interrupted (the run was
    stopped by Ctrl-C: the bench puts the cell back to pending)."""

    status: str = "done"

    @classmethod
    def failure(cls, message: str) -> CellOutcome:
        return cls(status="error", error=message, host=platform.node())


def _versions(kind: str, model: str) -> str:
    from tabcoder.runner import versions

    found = versions()
    if kind == BASELINE:
        for name in _EXTRA_VERSIONS:
            try:
                found[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                pass
    return json.dumps(found, sort_keys=True)


EDIT_FORMATS = ("search-replace", "functions")  # the reply formats that edit a parent's script


def attempt_counts(journal_path: Path) -> dict[str, int | None]:
    """From a run's journal: the model's complete attempts (the harness's baseline, attempt 0, and attempts
    still pending are not counted), how many repeated an earlier script, how many replied to a parent in an
    edit format, and how many of those edits applied. All None when the run left no journal."""
    from tabcoder.journal import Journal

    if not Path(journal_path).is_file():
        return dict.fromkeys(("model_attempts", "repeats", "edits", "edits_applied"))
    model = [a for a in Journal.load(Path(journal_path)).attempts if a.kind != "baseline"]
    edits = [a for a in model if a.parent is not None and a.edit_format in EDIT_FORMATS]
    return {"model_attempts": len(model), "repeats": sum(a.duplicate_of is not None for a in model),
            "edits": len(edits), "edits_applied": sum(a.edit_error is None for a in edits)}


def _baseline_lift(result: Result) -> dict[str, Any]:
    """The `CellResult` fields a run's attribution and journal give: the baseline's validation score, who
    wrote the chosen solution, whether the model beat the baseline, the gains, and the attempt counts."""
    found: dict[str, Any] = attempt_counts(Path(result.run_dir) / "journal.jsonl")
    attribution = result.attribution
    if attribution is not None:
        beat = attribution.beat_baseline
        found.update(baseline_validation=attribution.baseline_validation, chosen_by=attribution.written_by,
                     beat_baseline=None if beat is None else int(beat), gain_validation=attribution.gain_validation,
                     gain_folds=attribution.gain_folds)
    return found


def _run_llm(spec: CellSpec) -> CellOutcome:
    from tabcoder.config import RunConfig
    from tabcoder.runner import run

    config = RunConfig(**{**spec.config, **spec.overrides}, model=spec.model, strategy=spec.strategy, seed=spec.seed,
                       answers=Path(spec.answers_path), out_dir=spec.cell_dir)
    result = run(spec.task_path, config=config)
    if result.cut_short:  # a search the model cut short is no measurement of the system: run it again later
        return CellOutcome.failure(f"LLMError: the search was cut short: {result.cut_short}")
    code = result.best.code if result.best is not None else None
    return CellOutcome(
        status="interrupted" if result.stop_reason == "interrupted" else "done",
        metric=result.task.metric, greater_is_better=result.validation_score.greater_is_better,
        validation_score=result.validation_score.value,
        test_score=None if result.test_score is None else result.test_score.value, valid=result.final_valid,
        attempts=result.attempts, valid_attempts=result.valid_attempts, tokens=result.tokens,
        seconds=round(result.seconds, 2), stop_reason=result.stop_reason, run_dir=str(result.run_dir),
        code=code, code_sha256=None if code is None else hashlib.sha256(code.encode()).hexdigest(),
        **_baseline_lift(result))


def _time_given(spec: CellSpec) -> TimeGiven | None:
    """The time an AutoML cell runs for (None for dummy and hgb, which take none)."""
    from tabcoder.bench.baselines import AUTOML

    if spec.model not in AUTOML:
        return None
    if spec.given is not None:
        return spec.given
    if "same_time_as" in spec.config:
        raise TabcoderError(f"the {spec.model} cell matches the wall time of LLM cells, but was given none: "
                            "run it through tabcoder.bench.run_bench")
    return fixed_time(spec.config)


def _run_baseline(spec: CellSpec) -> CellOutcome:
    from tabcoder.bench.baselines import run_baseline
    from tabcoder.config import RunConfig
    from tabcoder.runner import load_answers, new_run_dir, resolve_task

    given = _time_given(spec)
    timing = given.result_fields() if given is not None else {}
    if given is not None and given.seconds is None:
        failed = ", ".join(f"{key} ({status})" for key, status in sorted(given.source.items()))
        outcome = CellOutcome.failure(f"no LLM cell of this task and seed finished, so {spec.model} has no wall "
                                      f"time to match (the next bench runs it again): {failed}")
        outcome.time_rule, outcome.time_source = given.rule, timing["time_source"]
        return outcome
    task = resolve_task(spec.task_path, RunConfig(**spec.overrides))
    answers = load_answers(Path(spec.answers_path), task)
    run_dir = new_run_dir(spec.cell_dir, task.name)
    result = run_baseline(spec.model, task, run_dir=run_dir, seed=spec.seed, answers=answers,
                          valid_fraction=spec.config["valid_fraction"],
                          seconds=None if given is None else given.seconds, threads=spec.config.get("threads", 1))
    return CellOutcome(
        status="done", metric=task.metric, greater_is_better=task.metric_spec.greater_is_better,
        validation_score=result.validation.score.value,
        test_score=None if result.test_score is None else result.test_score.value, valid=result.valid,
        attempts=1, valid_attempts=int(result.validation.valid), tokens=0, seconds=round(result.seconds, 2),
        stop_reason="baseline", run_dir=str(run_dir), **timing)


def run_cell(spec: CellSpec) -> CellOutcome:
    """Run one cell here and now. Harness failures (a typed error, or a crash) become an `error` outcome;
    Ctrl-C outside the search loop propagates."""
    try:
        outcome = _run_llm(spec) if spec.kind == LLM else _run_baseline(spec)
    except TabcoderError as exc:
        outcome = CellOutcome.failure(f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 - a crash in one cell must not stop the bench
        log.exception("cell %s crashed", spec.key)
        lines = traceback.format_exception(exc)
        outcome = CellOutcome.failure(f"{type(exc).__name__}: {exc}\n{''.join(lines)[-2000:]}")
    outcome.versions_json = _versions(spec.kind, spec.model)
    outcome.host = platform.node()
    return outcome
