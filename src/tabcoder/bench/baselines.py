"""The baselines a benchmark compares the LLM against, graded exactly like an LLM's solution.

Scope: four baselines behind one small interface (`search` on the harness's fit split, `refit` on all
training rows): `dummy` (scikit-learn's DummyClassifier with class priors / DummyRegressor with the mean,
the median for mae), `hgb` (a default HistGradientBoosting, one thread, categorical columns ordinal
encoded), and the AutoML baselines, which get the cell's time budget (in a bench: the wall time of the
task's LLM cells, see `matrix.SameTime`): `flaml` (FLAML AutoML; optional extra `flaml`; its final model is
the best configuration found on the fit split, refitted on all rows) and `autogluon` (AutoGluon's
TabularPredictor, presets "medium_quality", one CPU; optional extra `autogluon`; its final model is a new
AutoGluon fit on all rows with the same time limit; the models are saved in the run folder).
`run_baseline` writes each
baseline's predictions as a `submission.csv` - for the validation rows of `grading.make_split` with the
cell's seed, then for the real test set - and grades both with `grading.grade_submission`, the grader the
LLM's runs use. For rmsle, every baseline fits log1p(target) and predicts with expm1.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder
from threadpoolctl import threadpool_limits

from tabcoder.errors import ConfigError
from tabcoder.evaluation import SUBMISSION_NAME
from tabcoder.grading import Grade, grade_submission, make_split
from tabcoder.metrics import Score
from tabcoder.task import Task

BASELINES = ("dummy", "hgb", "flaml", "autogluon")
AUTOML = ("flaml", "autogluon")  # the baselines that take a time budget
FLAML_FIX = "pip install 'tabcoder[flaml]'"
AUTOGLUON_FIX = "pip install 'tabcoder[autogluon]'"
DEFAULT_AUTOML_SECONDS = 60.0  # without LLM cells to match and without a budget
DEFAULT_FLAML_SECONDS = DEFAULT_AUTOML_SECONDS  # the name before AutoGluon
_MAX_CATEGORIES = 250  # HistGradientBoosting's categorical support needs fewer categories than max_bins
# our metric -> FLAML's name for it (None: FLAML's default for the task type)
_FLAML_METRICS = {"accuracy": "accuracy", "roc_auc": "roc_auc", "log_loss": "log_loss", "f1": "f1",
                  "macro_f1": "macro_f1", "rmse": "rmse", "mse": "mse", "mae": "mae", "rmsle": "rmse", "r2": "r2"}


def unavailable_reason(name: str) -> str | None:
    """Why the baseline `name` cannot run here (with the fix), or None when it can."""
    if name not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)} (or none)")
    if name == "flaml" and (importlib.util.find_spec("flaml") is None or importlib.util.find_spec("lightgbm") is None):
        return f"FLAML is not installed; install it with {FLAML_FIX}"
    if name == "autogluon":
        return _autogluon_problem()
    return None


def _installed(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def pin_conflicts(requirements: list[str], installed=_installed) -> list[str]:
    """The requirements (Requires-Dist lines without an extra) that the installed versions break, as
    'pandas 3.1.1 (needs <2.4.0,>=2.0.0)'. Requirements of packages that are not installed are left out."""
    from packaging.requirements import InvalidRequirement, Requirement

    broken = []
    for line in requirements:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # an extra's requirement, or another platform's
        version = installed(requirement.name)
        if version is not None and requirement.specifier and not requirement.specifier.contains(version, prereleases=True):
            broken.append(f"{requirement.name} {version} (needs {requirement.specifier})")
    return broken


def _autogluon_problem() -> str | None:
    """AutoGluon missing, or installed beside versions it refuses (AutoGluon 1.6 pins pandas<2.4; on pandas 3
    its feature generators fail with "fillna() got an unexpected keyword argument 'downcast'")."""
    try:
        found = importlib.util.find_spec("autogluon.tabular") is not None
    except ModuleNotFoundError:  # no `autogluon` namespace at all
        found = False
    if not found:
        return f"AutoGluon is not installed; install it with {AUTOGLUON_FIX}"
    broken = []
    for distribution in ("autogluon.tabular", "autogluon.core", "autogluon.common", "autogluon.features"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            broken += pin_conflicts(importlib.metadata.requires(distribution) or [])
    if broken:
        version = _installed("autogluon.tabular")
        return (f"AutoGluon {version} is installed beside versions it does not support: "
                f"{'; '.join(dict.fromkeys(broken))}; install it with {AUTOGLUON_FIX} in an environment where pip "
                "may resolve its pins (pandas<2.4: it moves pandas 3 back to 2.3)")
    return None


# =========================================================================== features


def _text_column(values: pd.Series) -> pd.Series:
    """Text categories as plain objects, missing values as NaN (pandas 3 strings hold pd.NA)."""
    text = values.astype(object).where(values.notna(), None).map(lambda v: None if v is None else str(v))
    return text.astype(object).where(text.notna(), np.nan)


def split_features(frame: pd.DataFrame, task: Task) -> pd.DataFrame:
    """The feature columns of `frame`: numbers as floats, anything else as text categories."""
    features = frame[task.feature_columns].copy()
    for column in features.columns:
        values = features[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            features[column] = values.astype(float)
        else:
            features[column] = _text_column(values)
    return features


def _categorical(features: pd.DataFrame) -> list[str]:
    return [c for c in features.columns if not pd.api.types.is_float_dtype(features[c])]


# =========================================================================== models


def _hgb_pipeline(task: Task, features: pd.DataFrame, seed: int):
    """Ordinal-encode text columns (first), pass numbers through; low-cardinality text is categorical."""
    text = _categorical(features)
    numbers = [c for c in features.columns if c not in text]
    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan)
    columns = ColumnTransformer([("text", encoder, text), ("numbers", "passthrough", numbers)])
    mask = [features[c].nunique() <= _MAX_CATEGORIES for c in text] + [False] * len(numbers)
    model_class = HistGradientBoostingRegressor if task.task_type == "regression" else HistGradientBoostingClassifier
    return make_pipeline(columns, model_class(categorical_features=mask if any(mask) else None, random_state=seed))


def _dummy_model(task: Task):
    if task.task_type != "regression":
        return DummyClassifier(strategy="prior")
    return DummyRegressor(strategy="median" if task.metric == "mae" else "mean")


@dataclass
class _SklearnBaseline:
    """dummy / hgb: `search` and `refit` both fit a fresh default model."""

    name: str
    task: Task
    seed: int

    def _fit(self, features: pd.DataFrame, y: np.ndarray):
        model = _dummy_model(self.task) if self.name == "dummy" else _hgb_pipeline(self.task, features, self.seed)
        return model.fit(features, y)

    search = refit = _fit

    def details(self) -> dict:
        return {}


@contextlib.contextmanager
def _quiet_flaml():
    """FLAML's own deprecation warnings (pandas, scikit-learn) say nothing about this run."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"(flaml|lightgbm|xgboost)(\.|$)")
        yield


@dataclass
class _FlamlBaseline:
    """FLAML AutoML: `search` spends the time budget on the fit split; `refit` trains the best configuration
    found there on all rows, without searching again (the LLM's final refit does not search either)."""

    task: Task
    seed: int
    seconds: float
    found: dict = field(default_factory=dict)

    def _settings(self) -> dict:
        kind = "regression" if self.task.task_type == "regression" else "classification"
        metric = _FLAML_METRICS.get(self.task.metric, "auto")
        if metric == "roc_auc" and self.task.task_type == "multiclass":
            metric = "roc_auc_ovr"
        return {"task": kind, "metric": metric, "n_jobs": 1, "verbose": 0, "seed": self.seed}

    @staticmethod
    def _frame(features: pd.DataFrame) -> pd.DataFrame:
        out = features.copy()
        for column in _categorical(out):
            out[column] = out[column].astype("category")
        return out

    def search(self, features: pd.DataFrame, y: np.ndarray):
        from flaml import AutoML

        logging.getLogger("flaml").setLevel(logging.WARNING)  # FLAML logs its search at INFO
        automl = AutoML()
        with _quiet_flaml():
            automl.fit(self._frame(features), y, time_budget=self.seconds, **self._settings())
        self.found = {"estimator": automl.best_estimator, "config": automl.best_config}
        return _FlamlModel(automl, self._frame)

    def refit(self, features: pd.DataFrame, y: np.ndarray):
        from flaml import AutoML

        automl = AutoML()
        estimator = self.found["estimator"]
        with _quiet_flaml():
            automl.fit(self._frame(features), y, estimator_list=[estimator], max_iter=1, time_budget=-1,
                       starting_points={estimator: self.found["config"]}, **self._settings())
        return _FlamlModel(automl, self._frame)

    def details(self) -> dict:
        return {"best_estimator": self.found.get("estimator"),
                "best_config": {k: _plain(v) for k, v in self.found.get("config", {}).items()}}


def _plain(value):
    """numpy scalars as Python numbers (for run.json)."""
    return value.item() if hasattr(value, "item") else value


@dataclass
class _FlamlModel:
    automl: Any
    prepare: Any

    @property
    def classes_(self):
        return self.automl.classes_

    def predict(self, features):
        return self.automl.predict(self.prepare(features))

    def predict_proba(self, features):
        return self.automl.predict_proba(self.prepare(features))


# our metric -> AutoGluon's eval_metric (rmsle: the target is log1p(y), so rmse on it)
_AUTOGLUON_METRICS = {"accuracy": "accuracy", "balanced_accuracy": "balanced_accuracy", "f1": "f1",
                      "macro_f1": "f1_macro", "roc_auc": "roc_auc", "log_loss": "log_loss",
                      "rmse": "root_mean_squared_error", "mse": "mean_squared_error",
                      "mae": "mean_absolute_error", "rmsle": "root_mean_squared_error", "r2": "r2"}
AUTOGLUON_PRESETS = "medium_quality"


@contextlib.contextmanager
def _autogluon_log(path: Path):
    """AutoGluon's log goes to `path` instead of its own stderr handler: even at verbosity 0 it logs, as
    errors, every model it skips because torch or fastai is not installed. Library warnings are silenced."""
    logger = logging.getLogger("autogluon")
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handlers, propagate = list(logger.handlers), logger.propagate
    for old in handlers:
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"(autogluon|lightgbm|xgboost|catboost|sklearn)(\.|$)")
            yield
    finally:
        logger.removeHandler(handler)
        handler.close()
        for old in handlers:
            logger.addHandler(old)
        logger.propagate = propagate


@dataclass
class _AutoGluonBaseline:
    """AutoGluon's TabularPredictor with presets "medium_quality" (no bagging or stacking), one CPU, no GPU.
    `search` fits it on the fit split for `seconds`; `refit` fits a new one on all rows for the same time
    limit (AutoGluon's own choice of models, not a replay of the first fit). Models go to
    `run_dir/autogluon/{search,refit}`."""

    task: Task
    seed: int
    seconds: float
    run_dir: Path
    threads: int = 1
    found: dict = field(default_factory=dict)

    def _label(self, features: pd.DataFrame) -> str:
        label = "__target__"
        while label in features.columns:
            label += "_"
        return label

    def _metric(self) -> str | None:
        metric = _AUTOGLUON_METRICS.get(self.task.metric)
        if metric == "roc_auc" and self.task.task_type == "multiclass":
            return "roc_auc_ovr_macro"
        return metric

    def _fit(self, features: pd.DataFrame, y: np.ndarray, folder: str):
        from autogluon.tabular import TabularPredictor

        label = self._label(features)
        frame = features.copy()
        frame[label] = y
        positive = self.task.positive_label if self.task.task_type == "binary" else None
        log = self.run_dir / "autogluon" / f"{folder}.log"
        with _autogluon_log(log):
            predictor = TabularPredictor(label=label, problem_type=self.task.task_type, eval_metric=self._metric(),
                                         path=str(self.run_dir / "autogluon" / folder), verbosity=1,
                                         positive_class=positive, learner_kwargs={"random_state": self.seed})
            predictor.fit(frame, presets=AUTOGLUON_PRESETS, time_limit=self.seconds, num_cpus=self.threads,
                          num_gpus=0, ag_args_fit={"num_cpus": self.threads, "num_gpus": 0})
        self.found[folder] = {"best_model": predictor.model_best, "models": list(predictor.model_names())}
        return _AutoGluonModel(predictor, log)

    def search(self, features: pd.DataFrame, y: np.ndarray):
        return self._fit(features, y, "search")

    def refit(self, features: pd.DataFrame, y: np.ndarray):
        return self._fit(features, y, "refit")

    def details(self) -> dict:
        return {"presets": AUTOGLUON_PRESETS, "time_limit": self.seconds, **self.found}


@dataclass
class _AutoGluonModel:
    predictor: Any
    log: Path

    @property
    def classes_(self) -> list:
        return list(self.predictor.class_labels)

    def predict(self, features):
        with _autogluon_log(self.log):
            return self.predictor.predict(features).to_numpy()

    def predict_proba(self, features):
        with _autogluon_log(self.log):
            probabilities = self.predictor.predict_proba(features, as_multiclass=True)
        return probabilities[self.classes_].to_numpy()


def make_baseline(name: str, task: Task, *, seed: int, seconds: float | None, run_dir: Path | None = None,
                  threads: int = 1):
    if name == "flaml":
        return _FlamlBaseline(task, seed, seconds or DEFAULT_AUTOML_SECONDS)
    if name == "autogluon":
        if run_dir is None:
            raise ValueError("the autogluon baseline saves its models in run_dir: give one")
        return _AutoGluonBaseline(task, seed, seconds or DEFAULT_AUTOML_SECONDS, Path(run_dir), threads)
    return _SklearnBaseline(name, task, seed)


# =========================================================================== predictions


def _target(frame: pd.DataFrame, task: Task) -> np.ndarray:
    y = frame[task.target]
    if task.task_type != "regression":
        return np.asarray(y.tolist())  # ints stay ints, text becomes a str array
    y = y.to_numpy(dtype=float)
    return np.log1p(y) if task.metric == "rmsle" else y


def _class_index(model, label) -> int:
    matches = [j for j, c in enumerate(model.classes_) if c == label or str(c) == str(label)]
    return matches[0]


def submission_frame(model, task: Task, frame: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """The predictions of `model` for the rows of `frame`, in the task's submission format."""
    out = pd.DataFrame({task.id_column: frame[task.id_column].to_numpy()})
    columns = task.submission_columns[1:]
    if task.task_type == "regression":
        predicted = np.asarray(model.predict(features), dtype=float)
        out[columns[0]] = np.clip(np.expm1(predicted), 0, None) if task.metric == "rmsle" else predicted
    elif not task.metric_spec.needs_proba:
        out[columns[0]] = model.predict(features)
    elif task.task_type == "binary":
        out[columns[0]] = model.predict_proba(features)[:, _class_index(model, task.positive_label)]
    else:
        probabilities = model.predict_proba(features)
        known = {str(c): j for j, c in enumerate(model.classes_)}
        for column in columns:
            out[column] = probabilities[:, known[column]] if column in known else 0.0
    return out


def _write_and_grade(model, task: Task, frame: pd.DataFrame, labels: pd.Series | None, path: Path) -> Grade | None:
    path.parent.mkdir(parents=True, exist_ok=True)
    submission_frame(model, task, frame, split_features(frame, task)).to_csv(path, index=False)
    return None if labels is None else grade_submission(path, task=task, labels=labels)


# =========================================================================== a baseline run


@dataclass
class BaselineResult:
    """A baseline's scores and costs, shaped like the fields of `runner.Result` that a bench stores."""

    run_dir: Path
    validation: Grade
    test: Grade | None
    seconds: float
    details: dict

    @property
    def valid(self) -> bool:
        return self.test is not None and self.test.valid

    @property
    def test_score(self) -> Score | None:
        return None if self.test is None else self.test.score


def run_baseline(name: str, task: Task, *, run_dir: Path, seed: int, valid_fraction: float,
                 answers: pd.Series | None, seconds: float | None = None, threads: int = 1) -> BaselineResult:
    """Search on the seeded fit split and grade on its validation rows; refit on all train rows, write
    `run_dir/submission.csv` for the test set and grade it against `answers`. BLAS / OpenMP pools are held
    to `threads` (on 2 vCPUs, HistGradientBoosting ran 4-25x slower with two threads than with one)."""
    with threadpool_limits(threads):
        return _run_baseline(name, task, run_dir, seed, valid_fraction, answers, seconds, threads)


def _run_baseline(name: str, task: Task, run_dir: Path, seed: int, valid_fraction: float,
                  answers: pd.Series | None, seconds: float | None, threads: int) -> BaselineResult:
    started = time.monotonic()
    baseline = make_baseline(name, task, seed=seed, seconds=seconds, run_dir=run_dir, threads=threads)
    split = make_split(task, seed=seed, valid_fraction=valid_fraction)
    searched = baseline.search(split_features(split.fit, task), _target(split.fit, task))
    validation = cast(Grade, _write_and_grade(searched, task, split.valid, split.labels,  # labels given: graded
                                              run_dir / "validation" / SUBMISSION_NAME))
    test = None
    if task.test is not None:
        final = baseline.refit(split_features(task.train, task), _target(task.train, task))
        test = _write_and_grade(final, task, task.test, answers, run_dir / SUBMISSION_NAME)
    result = BaselineResult(run_dir, validation, test, time.monotonic() - started, baseline.details())
    _write_run_json(result, name, seed, valid_fraction, seconds)
    return result


def _write_run_json(result: BaselineResult, name: str, seed: int, valid_fraction: float, seconds: float | None) -> None:
    summary = {"baseline": name, "seed": seed, "valid_fraction": valid_fraction, "time_budget": seconds,
               "validation_score": result.validation.score.value, "validation_problems": result.validation.problems,
               "test_score": None if result.test_score is None else result.test_score.value,
               "seconds": round(result.seconds, 2), "details": result.details}
    (result.run_dir / "run.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
