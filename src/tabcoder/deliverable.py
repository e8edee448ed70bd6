"""What `best/` holds besides the solution: the entry point that predicts new rows, and a README that says what
the solution is, how it scored and how to run it.

Scope: `prediction_mode` (does the solution leave a fitted model that `predict.py` can use without training
again: it defines `predict(model, train, test)`, trains only when it is the main script, and saved
`model.joblib`), `write_predict_entry` (`best/predict.py`, from `templates/predict.py.j2`), `requirements` (the
distributions and versions the script imports) and `write_readme` (`best/README.md`). Nothing here runs code;
`tabcoder.prediction` runs `predict.py` in the sandbox.
"""

from __future__ import annotations

import ast
import platform
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata, resources
from pathlib import Path

import jinja2

from tabcoder.evaluation import MODEL_FILE
from tabcoder.metrics import Score
from tabcoder.task import Task

PREDICT_NAME = "predict.py"
README_NAME = "README.md"
SAVED_MODEL = "saved model"
RERUN = "re-run"
#: Calls a solution may make at its top level and still be imported without training (settings, seeds).
_HARMLESS_CALL_ROOTS = frozenset({"warnings", "np", "numpy", "pd", "pandas", "random", "sklearn", "set_config",
                                  "filterwarnings", "simplefilter", "os"})


@dataclass(frozen=True)
class PredictionMode:
    mode: str  # SAVED_MODEL or RERUN
    why: str  # in words, for the README and `tabcoder predict`


def prediction_mode(code: str, folder: Path) -> PredictionMode:
    """Whether `predict.py` can use the fitted model the solution in `folder` saved, or must re-run it."""
    reason = _importable_problem(code)
    if reason is None and not (folder / MODEL_FILE).is_file():
        reason = f"it saved no {MODEL_FILE}"
    if reason is not None:
        return PredictionMode(RERUN, f"re-runs solution.py with the new rows as its test set ({reason})")
    return PredictionMode(SAVED_MODEL, f"loads {MODEL_FILE} and calls solution.predict: nothing is trained again")


def _importable_problem(code: str) -> str | None:
    """Why the script cannot be imported for its `predict` function without training; None when it can."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return "it does not parse"
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    predict = functions.get("predict")
    if predict is None or len(predict.args.args) < 3:
        return "it defines no predict(model, train, test) function"
    for node in tree.body:
        if not _harmless(node):
            return f"line {node.lineno} runs at import, outside `if __name__ == \"__main__\":`"
    return None


def _harmless(node: ast.stmt) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Pass)):
        return True
    if isinstance(node, ast.If):
        test = node.test
        return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
                and len(test.comparators) == 1 and isinstance(test.comparators[0], ast.Constant)
                and test.comparators[0].value == "__main__")
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        return node.value is not None and not any(isinstance(n, ast.Call) for n in ast.walk(node.value))
    if isinstance(node, ast.Expr):
        if isinstance(node.value, ast.Constant):
            return True
        return isinstance(node.value, ast.Call) and _call_root(node.value.func) in _HARMLESS_CALL_ROOTS
    return False


def _call_root(func: ast.expr) -> str | None:
    while isinstance(func, ast.Attribute):
        func = func.value
    return func.id if isinstance(func, ast.Name) else None


def _template(name: str) -> jinja2.Template:
    text = resources.files("tabcoder").joinpath("templates", name).read_text(encoding="utf-8")
    return jinja2.Environment(keep_trailing_newline=True).from_string(text)


def write_predict_entry(folder: Path, task: Task, mode: PredictionMode) -> Path:
    """Write `folder/predict.py`: NEW.csv -> predictions in the submission's columns, by `mode`."""
    columns = task.submission_columns[1:]
    placeholder = "0.0" if task.task_type == "regression" or task.metric_spec.needs_proba else \
        repr(_python(task.classes[0] if task.classes else 0))
    text = _template("predict.py.j2").render(mode=mode.mode, id_column=task.id_column, target=task.target,
                                             prediction_columns=columns, placeholder=placeholder)
    path = folder / PREDICT_NAME
    path.write_text(text, encoding="utf-8")
    return path


def _python(value: object) -> object:
    return value.item() if hasattr(value, "item") else value


def requirements(code: str) -> list[tuple[str, str]]:
    """(distribution, version) of every installed distribution the script imports at its top level or in its
    functions, sorted; the standard library is left out."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module.split(".")[0])
    modules -= set(sys.stdlib_module_names)
    by_module = metadata.packages_distributions()
    found = {}
    for module in modules:
        for dist in by_module.get(module, []):
            try:
                found[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
    return sorted(found.items(), key=lambda item: item[0].lower())


@dataclass(frozen=True)
class Scores:
    validation: Score
    n_validation: int
    confirmed: Score | None
    folds: int
    test: Score | None


def write_readme(folder: Path, *, task: Task, run_dir: Path, attribution: str, scores: Scores,
                 mode: PredictionMode, formatting: str | None, code: str) -> Path:
    """Write `folder/README.md`: the task, the metric, the scores, the chosen attempt, what the solution needs
    and the commands that reproduce the submission and predict new rows."""
    folder, run_dir = folder.resolve(), run_dir.resolve()  # the commands work from any directory
    spec = task.metric_spec
    better = "higher" if spec.greater_is_better else "lower"
    if task.task_type == "regression":
        kind = "regression"
    else:
        kind = f"{task.task_type} classification, {len(task.classes or [])} classes"
    lines = [f"# {task.name}: the delivered solution", "",
             f"Written by tabcoder on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC for the task at "
             f"`{task.source}` (run folder `{run_dir}`).", "",
             f"- Task: predict `{task.target}` ({kind}) from {len(task.feature_columns)} feature columns; "
             f"id column `{task.id_column}`; {len(task.train)} training rows, "
             f"{0 if task.test is None else len(task.test)} test rows.",
             f"- Metric: {spec.label} (`{spec.name}`, {better} is better)"
             + (f"; the positive class is `{task.positive_label}`" if task.task_type == "binary" else "") + ".",
             f"- Solution: {_sentence(attribution.removeprefix('chosen: '))}",
             f"- Validation score: {scores.validation} on {scores.n_validation} held-out training rows "
             "(the rows the search chose on).",
             (f"- Confirmation folds: {scores.confirmed} (mean of {scores.folds} folds)." if scores.confirmed
              else "- Confirmation folds: not run for this solution."),
             (f"- Test score: {scores.test} (from the answers given to the run; never used to choose)."
              if scores.test else "- Test score: not known (no answers were given)."),
             f"- Submission: `{run_dir / 'submission.csv'}`"
             + (f"; {_lower_first(formatting)}." if formatting else
                f", exactly the file solution.py writes ({task.output_format.source}'s format)."),
             "", "## Files", "",
             "- `solution.py`: trains on `input/train.csv` and writes `submission.csv` for `input/test.csv`"
             + (f" (and saves the fitted model as `{MODEL_FILE}`)." if mode.mode == SAVED_MODEL else "."),
             f"- `{PREDICT_NAME}`: predictions for new rows; it {mode.why}.",
             "- `input/`: the data solution.py reads (all training rows, the test rows, the sample submission, "
             "the description).", "",
             "## What it needs", "",
             f"Python {platform.python_version()} and these packages (the versions it ran with):", "", "```"]
    needs = requirements(code)
    lines += [f"pip install {' '.join(f'{d}=={v}' for d, v in needs)}" if needs else "# the standard library only"]
    lines += ["```", "", "## Reproduce the submission", "", "```", f"cd {folder} && python solution.py", "```", "",
              "It writes `submission.csv` in this folder" + (f" and `{MODEL_FILE}`" if mode.mode == SAVED_MODEL
                                                             else "") + ".", "",
              "## Predict new rows", "",
              "NEW.csv (or any table tabcoder reads: Parquet, XLSX, ARFF...) holds the id column "
              f"`{task.id_column}` and the feature columns, without `{task.target}`.", "",
              "```", f"tabcoder predict {run_dir} NEW.csv --out predictions.csv", "```", "",
              "checks the new rows against the task's feature columns, runs the prediction in the sandbox and "
              "writes the predictions in the submission's format. Without tabcoder, and without its sandbox:", "",
              "```", f"cd {folder} && python {PREDICT_NAME} NEW.csv predictions.csv", "```",
              "", f"(`python {PREDICT_NAME} input/test.csv` writes the predictions of `submission.csv` again.)", ""]
    path = folder / README_NAME
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[0].upper() + text[1:]).rstrip(".") + "."


def _lower_first(text: str) -> str:
    return (text[0].lower() + text[1:]).rstrip(".") if text else text
