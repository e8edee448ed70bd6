"""The built-in suite: five small tasks made from the data sets that ship inside scikit-learn.

Scope: `ensure_builtin_suite(root)` writes, once and deterministically, a suite in the layout that
`load_suite` reads: `tasks/<task>/` (train.csv, test.csv, sample_submission.csv, description.md,
task.toml), `answers/<task>.csv` + `answers/meta.json`, and `SOURCES.md` with each data set's origin
and licence. Rows are shuffled with a fixed seed before ids are given (several of these files are
sorted by class, which would make the id a leak), then split 70/30 (stratified for classification).
A `suite.json` marker records the generator version and the sha256 of every file; a folder whose
marker matches is reused, anything else is rebuilt in a temporary folder and swapped in.

Nothing is downloaded: the tables are the CSV files bundled in the scikit-learn wheel.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.model_selection import train_test_split

from tabcoder.backends.weights import cache_home
from tabcoder.bench.suite import ANSWERS_DIR, META_NAME, TASKS_DIR
from tabcoder.grading import make_sample_submission
from tabcoder.task import load_task

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1
SPLIT_SEED = 20240501
TEST_FRACTION = 0.3
MARKER = "suite.json"
UCI = "Creative Commons Attribution 4.0 (CC BY 4.0), UCI Machine Learning Repository"
SKLEARN = "redistributed in the scikit-learn wheel (BSD-3-Clause)"


@dataclass(frozen=True)
class BuiltinTask:
    """How to make one task: a loader returning (features, target) and what the task.toml says."""

    name: str
    load: Callable[[], tuple[pd.DataFrame, pd.Series]]
    target: str
    task_type: str
    metric: str
    title: str
    text: str
    source: str
    licence: str
    positive_label: str | None = None


def _snake(name: str) -> str:
    return "_".join(str(name).replace("/", "_").replace("(", "").replace(")", "").split()).lower()


def _labelled(bunch, names: list[str] | None = None) -> tuple[pd.DataFrame, pd.Series]:
    """Features with snake_case names, and the target mapped to its class names when given."""
    frame = pd.DataFrame(bunch.data, columns=[_snake(c) for c in bunch.feature_names])
    target = pd.Series(bunch.target)
    if names is not None:
        target = target.map(dict(enumerate(names)))
    return frame, target


def _breast_cancer():
    bunch = datasets.load_breast_cancer()
    return _labelled(bunch, list(bunch.target_names))


def _diabetes():
    bunch = datasets.load_diabetes(scaled=False)
    frame, target = _labelled(bunch)
    frame["sex"] = frame["sex"].map({1.0: "group_1", 2.0: "group_2"})
    return frame, target


def _iris():
    bunch = datasets.load_iris()
    return _labelled(bunch, list(bunch.target_names))


def _wine():
    bunch = datasets.load_wine()
    return _labelled(bunch, [f"cultivar_{i + 1}" for i in range(3)])


def _digits():
    bunch = datasets.load_digits()
    frame = pd.DataFrame(bunch.data.astype(int), columns=[f"pixel_{r}_{c}" for r in range(8) for c in range(8)])
    return frame, pd.Series(bunch.target)


TASKS: tuple[BuiltinTask, ...] = (
    BuiltinTask("breast_cancer", _breast_cancer, "diagnosis", "binary", "log_loss", "Breast cancer diagnosis",
                "Predict the probability that a breast mass is malignant (rather than benign) from 30 features "
                "computed from a digitised image of a fine needle aspirate (radius, texture, perimeter, area, "
                "smoothness, ... as mean, standard error and worst value).",
                "Breast Cancer Wisconsin (Diagnostic), Wolberg, Street and Mangasarian (1995)", UCI,
                positive_label="malignant"),
    BuiltinTask("diabetes", _diabetes, "progression", "regression", "mae", "Diabetes progression",
                "Predict a quantitative measure of disease progression one year after baseline for diabetes "
                "patients from age, sex, body mass index, average blood pressure and six blood serum "
                "measurements (s1 ... s6).",
                "Diabetes data of Efron, Hastie, Johnstone and Tibshirani, 'Least Angle Regression' (2004)",
                "no separate licence stated by the authors; " + SKLEARN),
    BuiltinTask("iris", _iris, "species", "multiclass", "balanced_accuracy", "Iris species",
                "Predict the species of an iris flower (setosa, versicolor, virginica) from the length and "
                "width of its sepals and petals, in cm.",
                "Iris, R. A. Fisher (1936)", UCI),
    BuiltinTask("wine", _wine, "cultivar", "multiclass", "macro_f1", "Wine cultivars",
                "Predict which of three cultivators grew a wine from Italy, from 13 constituents found by "
                "chemical analysis (alcohol, malic acid, flavanoids, colour intensity, proline, ...).",
                "Wine, Forina et al., via the UCI repository (1991)", UCI),
    BuiltinTask("digits", _digits, "digit", "multiclass", "accuracy", "Handwritten digits",
                "Predict the digit (0-9) written in an 8x8 image; each of the 64 features is the number of "
                "pixels set in a 4x4 block of the original 32x32 bitmap (0-16).",
                "Optical Recognition of Handwritten Digits, Alpaydin and Kaynak (1998)", UCI),
)


def builtin_root(cache: Path | None = None) -> Path:
    """Where the built-in suite is written: `cache` or `$TABCODER_HOME/suites`, plus `builtin`."""
    return (Path(cache) if cache is not None else cache_home() / "suites") / "builtin"


def ensure_builtin_suite(cache: Path | None = None) -> Path:
    """The root of the built-in suite (tasks/ + answers/), generated now if missing or out of date."""
    root = builtin_root(cache)
    if _marker_matches(root):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".builtin-", dir=root.parent))
    try:
        write_builtin_suite(staging)
        if root.exists():
            shutil.rmtree(root)
        staging.rename(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("built-in suite written to %s", root)
    return root


def write_builtin_suite(root: Path) -> None:
    """Write every built-in task, the answers, meta.json, SOURCES.md and the marker into `root`."""
    meta = {}
    for spec in TASKS:
        meta[spec.name] = _write_task(spec, root)
    answers = root / ANSWERS_DIR
    (answers / META_NAME).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    (root / "SOURCES.md").write_text(_sources_text(), encoding="utf-8")
    marker = {"generator_version": GENERATOR_VERSION, "spec": _spec_fingerprint(), "files": _file_hashes(root)}
    (root / MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _split(spec: BuiltinTask) -> tuple[pd.DataFrame, pd.DataFrame]:
    features, target = spec.load()
    table = features.copy()
    table[spec.target] = target.to_numpy()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(table))
    table = table.iloc[order].reset_index(drop=True)
    table.insert(0, "id", np.arange(1, len(table) + 1))
    stratify = None if spec.task_type == "regression" else table[spec.target]
    train, test = train_test_split(table, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=stratify)
    return train.sort_values("id"), test.sort_values("id")


def _write_task(spec: BuiltinTask, root: Path) -> dict:
    folder = root / TASKS_DIR / spec.name
    folder.mkdir(parents=True)
    train, test = _split(spec)
    train.to_csv(folder / "train.csv", index=False)
    test.drop(columns=[spec.target]).to_csv(folder / "test.csv", index=False)
    settings = {"target": spec.target, "id": "id", "task_type": spec.task_type, "metric": spec.metric,
                "positive_label": spec.positive_label}
    toml = "".join(f'{k} = "{v}"\n' for k, v in settings.items() if v is not None)
    (folder / "task.toml").write_text(toml, encoding="utf-8")
    (folder / "description.md").write_text(
        f"# {spec.title}\n{spec.text}\nSource: {spec.source}; licence: {spec.licence}.\n"
        f"Evaluation: {spec.metric}.\n", encoding="utf-8")
    task = load_task(folder)
    test_ids = cast(pd.DataFrame, task.test)["id"]  # the folder has a test.csv
    make_sample_submission(task, test_ids).to_csv(folder / "sample_submission.csv", index=False)
    answers = root / ANSWERS_DIR
    answers.mkdir(exist_ok=True)
    test[["id", spec.target]].to_csv(answers / f"{spec.name}.csv", index=False)
    return settings


def _sources_text() -> str:
    lines = ["# Built-in suite: sources and licences", "",
             "Generated by `tabcoder bench builtin` from the CSV files bundled in the scikit-learn wheel "
             f"(generator version {GENERATOR_VERSION}, split seed {SPLIT_SEED}, {int(TEST_FRACTION * 100)}% test).",
             "", "| task | rows | metric | source | licence |", "|---|---|---|---|---|"]
    for spec in TASKS:
        rows = len(spec.load()[1])
        lines.append(f"| {spec.name} | {rows} | {spec.metric} | {spec.source} | {spec.licence} |")
    return "\n".join(lines) + "\n"


def _file_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != MARKER}


def _spec_fingerprint() -> str:
    """Changes whenever a task's definition or the scikit-learn version (its bundled data) changes."""
    described = [(t.name, t.target, t.task_type, t.metric, t.positive_label, t.title, t.text, t.source, t.licence)
                 for t in TASKS]
    text = json.dumps([GENERATOR_VERSION, SPLIT_SEED, TEST_FRACTION, metadata.version("scikit-learn"), described])
    return hashlib.sha256(text.encode()).hexdigest()


def _marker_matches(root: Path) -> bool:
    try:
        marker = json.loads((root / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (marker.get("generator_version") == GENERATOR_VERSION and marker.get("spec") == _spec_fingerprint()
            and marker.get("files") == _file_hashes(root))
