"""Training tasks without end: varied tabular tasks for self-training, made on this machine.

Scope: `generate_tasks(root, count, seed)` writes `count` tasks into a suite folder that `bench.load_suite`
reads (`tasks/<name>/`, `answers/<name>.csv`, `answers/meta.json`) plus `manifest.json` (what each task is
made of). Every task is a synthetic table whose target is a noisy function of a few hidden factors, shown
through columns with the troubles real data has: text and categorical columns (read by pandas 3 as
strings), missing values, dates, near-unique codes, skewed numbers and targets, rare classes, labels
spelt as words or booleans. The layouts and metrics are those tabcoder reads: Kaggle folders with CSV,
XLSX or ARFF tables (with or without task.toml; the metric named in the description or only implied by
the sample submission) and ML-hw folders with a `columns.py`. Each written task is loaded back with
`load_task` and must settle on the target, task type and metric it was made with; a layout that does not
(an ambiguous description, say) is rewritten with an explicit task.toml and the manifest says so.

Nothing comes from the shared tasks or the built-in suite (made from scikit-learn's bundled data sets): the
tables are drawn from numpy's generator only, so evaluation on those tasks stays fair. The same
(count, seed) always gives the same files.
"""

from __future__ import annotations

import json
import string
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from tabcoder.bench.suite import ANSWERS_DIR, META_NAME, TASKS_DIR
from tabcoder.errors import ConfigError
from tabcoder.grading import make_sample_submission
from tabcoder.task import load_task

GENERATOR_VERSION = 1
MANIFEST = "manifest.json"
LAYOUTS = ("kaggle-toml", "kaggle-description", "kaggle-sample", "kaggle-xlsx", "kaggle-arff", "columns-py")
TROUBLES = ("missing", "categorical", "text", "date", "code", "skewed", "rare_classes", "word_labels",
            "constant", "integer_ids_shuffled")
METRICS = {"binary": ("accuracy", "f1", "roc_auc", "log_loss", "balanced_accuracy"),
           "multiclass": ("accuracy", "macro_f1", "log_loss", "balanced_accuracy"),
           "regression": ("rmse", "mae", "r2", "rmsle")}
_METRIC_WORDS = {"accuracy": "accuracy", "f1": "the F1 score of the positive class",
                 "roc_auc": "the area under the ROC curve (AUC)", "log_loss": "log loss",
                 "balanced_accuracy": "balanced accuracy", "macro_f1": "macro F1",
                 "rmse": "root mean squared error (RMSE)", "mae": "mean absolute error (MAE)",
                 "r2": "the coefficient of determination (R2)", "rmsle": "root mean squared logarithmic error (RMSLE)"}
_NUMERIC = ("age", "income", "tenure_months", "balance", "score", "height_cm", "weight_kg", "distance_km",
            "visits", "rating", "temperature", "humidity", "pressure", "speed", "debt_ratio", "credit_limit",
            "num_items", "duration_s", "latency_ms", "area_m2", "rooms", "floor", "dose_mg", "voltage", "load_kw",
            "clicks", "sessions", "discount_pct", "yield_t", "depth_m")
_CATEGORICAL = {"region": ("north", "south", "east", "west", "central"),
                "segment": ("consumer", "corporate", "home_office"),
                "plan": ("basic", "standard", "premium", "enterprise"),
                "channel": ("web", "store", "phone", "partner"),
                "device": ("android", "ios", "desktop", "tablet"),
                "material": ("steel", "wood", "plastic", "glass", "concrete", "copper"),
                "grade": ("A", "B", "C", "D", "E"),
                "colour": ("red", "green", "blue", "black", "white"),
                "soil": ("clay", "sand", "loam", "silt")}
_TEXT = {"comment": (("great service", "fast delivery", "very happy", "works well"),
                     ("late again", "broken on arrival", "poor support", "would not buy")),
         "notes": (("routine check", "no issues", "stable"), ("urgent", "follow up needed", "unstable reading"))}
_DATES = ("signup_date", "order_date", "recorded_on", "first_seen")
_CODES = ("ticket", "serial", "account_code", "batch")
_TARGETS = {"binary": ("churned", "defaulted", "approved", "outcome", "is_fraud", "survived", "label"),
            "multiclass": ("category", "class", "grade_band", "species_group", "segment_label", "tier"),
            "regression": ("price", "demand", "yield_kg", "cost", "duration_days", "energy", "target")}
_IDS = ("id", "ID", "Id", "row_id", "record_id", "customer_id")
_BINARY_LABELS = (("yes", "no"), (True, False), (1, 0), ("churn", "stay"), ("positive", "negative"))
_CLASS_NAMES = (("low", "medium", "high", "very_high", "extreme", "none"),
                ("class_a", "class_b", "class_c", "class_d", "class_e", "class_f"),
                (0, 1, 2, 3, 4, 5), ("alpha", "beta", "gamma", "delta", "epsilon", "zeta"))


@dataclass(frozen=True)
class TaskSpec:
    """What one generated task is made of (recorded in the manifest)."""

    name: str
    task_type: str
    metric: str
    layout: str
    n_rows: int
    troubles: tuple[str, ...]
    seed: int


def plan_tasks(count: int, seed: int = 0) -> list[TaskSpec]:
    """`count` task specs, deterministic in (count, seed): task types, metrics and layouts cycle so that a
    small count already covers each of them; rows and troubles are drawn."""
    if count < 1:
        raise ConfigError(f"the number of tasks must be at least 1, not {count}")
    rng = np.random.default_rng([GENERATOR_VERSION, seed])
    types = ("binary", "regression", "multiclass")
    specs = []
    for i in range(count):
        task_type = types[i % 3]
        metrics = METRICS[task_type]
        metric = metrics[(i // 3) % len(metrics)]
        layout = LAYOUTS[(i * 5 + seed) % len(LAYOUTS)]
        n_rows = int(rng.integers(300, 2500))
        optional = [t for t in TROUBLES if t not in ("rare_classes", "skewed")]
        chosen = {t for t in optional if rng.random() < 0.5}
        chosen.add("categorical" if rng.random() < 0.7 else "missing")
        if task_type == "multiclass" and rng.random() < 0.5:
            chosen.add("rare_classes")
        if task_type == "regression" and (metric == "rmsle" or rng.random() < 0.4):
            chosen.add("skewed")
        specs.append(TaskSpec(f"gen{seed}_{i:03d}_{task_type}", task_type, metric, layout, n_rows,
                              tuple(t for t in TROUBLES if t in chosen), int(rng.integers(2**31))))
    return specs


def make_table(spec: TaskSpec) -> tuple[pd.DataFrame, pd.Series, dict]:
    """The feature table, the target and what the columns are (names -> kind) for one spec."""
    rng = np.random.default_rng(spec.seed)
    n, troubles = spec.n_rows, set(spec.troubles)
    factors = rng.normal(size=(n, 4))
    columns: dict[str, pd.Series] = {}
    kinds: dict[str, str] = {}
    numeric_names = list(rng.permutation(_NUMERIC))
    for j in range(int(rng.integers(3, 8))):  # informative numbers: a factor, scaled, sometimes skewed
        name = numeric_names.pop()
        base = factors[:, j % 4] + 0.3 * rng.normal(size=n)
        if "skewed" in troubles and j == 0:
            values = np.exp(1.2 * base) * 10
        else:
            values = base * rng.uniform(1, 30) + rng.uniform(-5, 100)
        if rng.random() < 0.3:
            values = np.round(values)
        columns[name], kinds[name] = pd.Series(np.round(values, 4)), "number"
    for _ in range(int(rng.integers(0, 3))):  # noise numbers
        name = numeric_names.pop()
        columns[name], kinds[name] = pd.Series(np.round(rng.normal(50, 15, size=n), 3)), "noise"
    if "categorical" in troubles:
        names = list(rng.permutation(list(_CATEGORICAL)))
        for k in range(int(rng.integers(1, 3))):
            name = names[k]
            levels = _CATEGORICAL[name]
            edges = np.quantile(factors[:, (k + 1) % 4], np.linspace(0, 1, len(levels) + 1)[1:-1])
            index = np.searchsorted(edges, factors[:, (k + 1) % 4] + 0.4 * rng.normal(size=n))
            columns[name], kinds[name] = pd.Series(np.asarray(levels, dtype=object)[index]), "category"
    if "text" in troubles:
        name = str(rng.choice(list(_TEXT)))
        good, bad = _TEXT[name]
        positive = factors[:, 2] + 0.5 * rng.normal(size=n) > 0
        words = np.where(positive, rng.choice(good, size=n), rng.choice(bad, size=n))
        columns[name], kinds[name] = pd.Series(words.astype(object)), "text"
    if "date" in troubles:
        name = str(rng.choice(_DATES))
        days = np.round(factors[:, 3] * 120 + rng.normal(0, 30, size=n)).astype(int)
        dates = pd.Timestamp("2023-06-01") + pd.to_timedelta(days, unit="D")
        columns[name], kinds[name] = pd.Series(dates.strftime("%Y-%m-%d").astype(object)), "date"
    if "code" in troubles:
        name = str(rng.choice(_CODES))
        prefix = "".join(rng.choice(list(string.ascii_uppercase), size=2))
        codes = [f"{prefix}-{v:06d}" for v in rng.choice(10**6, size=n, replace=False)]
        columns[name], kinds[name] = pd.Series(codes, dtype=object), "code"
    if "constant" in troubles:
        columns["source"], kinds["source"] = pd.Series(["batch_1"] * n, dtype=object), "constant"
    features = pd.DataFrame(columns)
    features = features[list(rng.permutation(features.columns))]
    signal = (1.0 * factors[:, 0] - 0.8 * factors[:, 1] + 0.6 * np.sin(2 * factors[:, 2])
              + 0.5 * factors[:, 3] * factors[:, 0])
    target = _target(spec, signal, rng)
    if "missing" in troubles:
        for name in rng.choice(features.columns, size=min(len(features.columns), int(rng.integers(1, 4))),
                               replace=False):
            if kinds[name] in ("constant", "code"):
                continue
            holes = rng.random(n) < rng.uniform(0.02, 0.25)
            features[name] = features[name].where(~holes)
    return features, target, kinds


def _target(spec: TaskSpec, signal: np.ndarray, rng: np.random.Generator) -> pd.Series:
    n = len(signal)
    if spec.task_type == "regression":
        values = signal + 0.4 * rng.normal(size=n)
        if "skewed" in spec.troubles or spec.metric == "rmsle":
            values = np.round(np.exp(0.8 * values) * rng.uniform(20, 500), 2)
        else:
            values = np.round(values * rng.uniform(5, 40) + rng.uniform(0, 200), 3)
        return pd.Series(values)
    if spec.task_type == "binary":
        shift = rng.uniform(-1.5, 0.5)  # from balanced to about one positive in six
        positive = rng.random(n) < 1 / (1 + np.exp(-(2 * signal + shift)))
        yes, no = _BINARY_LABELS[int(rng.integers(len(_BINARY_LABELS)))] if "word_labels" in spec.troubles \
            else (1, 0)
        return pd.Series(np.where(positive, yes, no).tolist() if isinstance(yes, str) else
                         [yes if p else no for p in positive])
    k = int(rng.integers(3, 6))
    weights = rng.normal(size=(4, k))
    scores = np.column_stack([signal * weights[0, c] + 0.5 * rng.normal(size=n) for c in range(k)])
    if "rare_classes" in spec.troubles:
        scores[:, -1] -= 2.5  # one class is rare
    labels = np.argmax(scores + rng.gumbel(size=scores.shape) * 0.5, axis=1)
    names = _CLASS_NAMES[int(rng.integers(len(_CLASS_NAMES)))] if "word_labels" in spec.troubles else _CLASS_NAMES[2]
    return pd.Series([names[c] for c in labels])


def write_task(spec: TaskSpec, root: Path) -> dict:
    """Write one task (its folder, its answers) under `root`; returns its manifest entry."""
    rng = np.random.default_rng(spec.seed + 1)
    features, target, kinds = make_table(spec)
    target_name = str(rng.choice(_TARGETS[spec.task_type]))
    id_name = str(rng.choice(_IDS))
    table = features.copy()
    table[target_name] = target.to_numpy(dtype=object) if target.dtype == object else target.to_numpy()
    order = rng.permutation(len(table))
    table = table.iloc[order].reset_index(drop=True)
    start = int(rng.integers(1, 5000))
    ids = np.arange(start, start + len(table))
    if "integer_ids_shuffled" in spec.troubles:
        ids = rng.permutation(ids)
    table.insert(0, id_name, ids)
    cut = int(len(table) * 0.75)
    train, test = table.iloc[:cut], table.iloc[cut:]
    folder = root / TASKS_DIR / spec.name
    folder.mkdir(parents=True)
    settings = {"target": target_name, "id": id_name, "task_type": spec.task_type, "metric": spec.metric}
    words = _METRIC_WORDS[spec.metric]
    description = _description(spec, target_name, id_name, kinds, words)
    layout = spec.layout
    _write_tables(folder, layout, train, test.drop(columns=[target_name]))
    _write_toml(folder, settings)  # explicit while the sample submission is made
    task = load_task(folder)
    sample = make_sample_submission(task, cast(pd.DataFrame, task.test)[id_name])
    fallback = None
    if layout == "columns-py":
        (folder / "task.toml").unlink()
        (folder / "columns.py").write_text(
            f"predict_goal = {target_name!r}\ntrain_file = 'train.csv'\ntest_file = 'test.csv'\n"
            f"task_description = {description!r}\n", encoding="utf-8")
    else:
        sample.to_csv(folder / "sample_submission.csv", index=False)
        (folder / "description.md").write_text(description, encoding="utf-8")
        if layout in ("kaggle-description", "kaggle-sample"):
            (folder / "task.toml").unlink()
            if layout == "kaggle-sample":  # nothing names the metric: the sample's values imply it
                (folder / "description.md").write_text(description.replace(_metric_sentence(words), ""),
                                                       encoding="utf-8")
    settled = _settled(folder)
    if settled != settings:
        fallback = f"the {layout} layout was read as {settled}; task.toml added"
        if (folder / "columns.py").exists():
            (folder / "columns.py").unlink()
            sample.to_csv(folder / "sample_submission.csv", index=False)
            (folder / "description.md").write_text(description, encoding="utf-8")
        _write_toml(folder, settings)
        if _settled(folder) != settings:  # cannot happen with every setting explicit; never write a wrong task
            raise RuntimeError(f"generated task {spec.name} does not load as made: {_settled(folder)} != {settings}")
    answers = root / ANSWERS_DIR
    answers.mkdir(exist_ok=True)
    test[[id_name, target_name]].to_csv(answers / f"{spec.name}.csv", index=False)
    return {**asdict(spec), "troubles": list(spec.troubles), "settings": settings,
            "columns": {name: kinds[name] for name in features.columns}, "rows": {"train": len(train), "test": len(test)},
            "fallback": fallback}


def _metric_sentence(words: str) -> str:
    return f"Submissions are evaluated on {words}.\n"


def _description(spec: TaskSpec, target: str, id_name: str, kinds: dict, words: str) -> str:
    what = {"binary": "whether", "multiclass": "the class of", "regression": "the value of"}[spec.task_type]
    listed = ", ".join(f"{name} ({kind if kind != 'noise' else 'number'})" for name, kind in kinds.items())
    return (f"# Synthetic task {spec.name}\nPredict {what} `{target}` for each row of the test set, identified "
            f"by `{id_name}`.\nColumns: {listed}.\n{_metric_sentence(words)}")


def _write_tables(folder: Path, layout: str, train: pd.DataFrame, test: pd.DataFrame) -> None:
    if layout == "kaggle-xlsx":
        train.to_excel(folder / "train.xlsx", index=False)
        test.to_excel(folder / "test.xlsx", index=False)
    elif layout == "kaggle-arff":
        _write_arff(folder / "train.arff", train, folder.name)
        _write_arff(folder / "test.arff", test, folder.name)
    else:
        train.to_csv(folder / "train.csv", index=False)
        test.to_csv(folder / "test.csv", index=False)


def _write_arff(path: Path, frame: pd.DataFrame, relation: str) -> None:
    import arff

    attributes: list[tuple[str, object]] = []
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
            levels = sorted({str(v) for v in column.dropna()})
            attributes.append((str(name), levels if len(levels) <= 30 else "STRING"))
        elif pd.api.types.is_integer_dtype(column):
            attributes.append((str(name), "INTEGER"))
        else:
            attributes.append((str(name), "REAL"))
    rows = [[None if pd.isna(v) else _arff_value(v, kind) for v, (_, kind) in zip(row, attributes, strict=True)]
            for row in frame.itertuples(index=False)]
    path.write_text(arff.dumps({"relation": relation, "attributes": attributes, "data": rows}), encoding="utf-8")


def _arff_value(value, kind) -> object:
    if isinstance(kind, list) or kind == "STRING":
        return str(value)
    return int(value) if kind == "INTEGER" else float(value)


def _write_toml(folder: Path, settings: dict) -> None:
    (folder / "task.toml").write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()),
                                      encoding="utf-8")


def _settled(folder: Path) -> dict:
    task = load_task(folder)
    return {"target": task.target, "id": task.id_column, "task_type": task.task_type, "metric": task.metric}


def generate_tasks(root: str | Path, count: int, seed: int = 0) -> dict:
    """Write `count` tasks into the new (or empty) folder `root` in the suite layout; returns the manifest
    (also written to root/manifest.json). Refuses a folder that holds anything else."""
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ConfigError(f"{root} already exists and is not empty; give a new folder for the generated tasks")
    root.mkdir(parents=True, exist_ok=True)
    entries = [write_task(spec, root) for spec in plan_tasks(count, seed)]
    meta = {e["name"]: e["settings"] for e in entries}
    (root / ANSWERS_DIR / META_NAME).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    manifest = {"generator_version": GENERATOR_VERSION, "count": count, "seed": seed, "tasks": entries,
                "source": "synthetic tables drawn with numpy (no shared task, no built-in suite data)"}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest
