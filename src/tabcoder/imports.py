"""Missing imports of well-known names: a script that uses `RandomForestRegressor` or `np` without importing
it fails at once with a NameError, the commonest failure of a small model asked for one function. The
harness adds the import line, and the attempt's note says which lines it added, so the work stays labelled.

Scope: names from a fixed list of public modules (scikit-learn's estimator and helper modules, numpy, pandas,
joblib, and LightGBM, XGBoost and CatBoost when installed). A name bound anywhere in the script (imported,
assigned, defined, an argument) is never touched, and nothing else in the script changes.
"""

from __future__ import annotations

import ast
import builtins
import functools
import importlib
import importlib.util

#: Public modules whose exported names can be imported for a script, in order of preference.
_SKLEARN_MODULES = (
    "sklearn.ensemble", "sklearn.linear_model", "sklearn.neighbors", "sklearn.svm", "sklearn.tree",
    "sklearn.naive_bayes", "sklearn.neural_network", "sklearn.discriminant_analysis", "sklearn.preprocessing",
    "sklearn.impute", "sklearn.pipeline", "sklearn.compose", "sklearn.feature_selection",
    "sklearn.decomposition", "sklearn.model_selection", "sklearn.metrics",
)
_OTHER_MODULES = ("lightgbm", "xgboost", "catboost")
_ALIASES = {"np": "import numpy as np", "pd": "import pandas as pd", "joblib": "import joblib",
            "numpy": "import numpy", "pandas": "import pandas"}


@functools.cache
def known_names() -> dict[str, str]:
    """Name -> the import line that brings it in, for the modules above that are installed here."""
    table: dict[str, str] = {}
    for module in _SKLEARN_MODULES + _OTHER_MODULES:
        if importlib.util.find_spec(module.split(".")[0]) is None:
            continue
        try:
            exported = getattr(importlib.import_module(module), "__all__", None)
        except Exception:  # noqa: BLE001 - a broken optional package offers no names
            continue
        for name in exported or ():
            if name[:1].isupper() or module.startswith("sklearn."):
                table.setdefault(name, f"from {module} import {name}")
    table.update(_ALIASES)
    return table


def _bound_and_used(tree: ast.Module) -> tuple[set[str], list[str]]:
    bound: set[str] = set()
    used: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                used.append(node.id)
            else:
                bound.add(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
    return bound, used


def missing_imports(code: str) -> list[str]:
    """The import lines for the well-known names `code` uses but never binds, in order of first use."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    bound, used = _bound_and_used(tree)
    free = [n for n in dict.fromkeys(used) if n not in bound and not hasattr(builtins, n)]
    if not free:
        return []
    table = known_names()
    return list(dict.fromkeys(table[n] for n in free if n in table))


def with_imports(code: str, lines: list[str]) -> str:
    """`code` with the import `lines` inserted after its last top-level import at the top (or first)."""
    if not lines:
        return code
    tree = ast.parse(code)
    after = 0
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            after = node.end_lineno or node.lineno
        elif not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) and after:
            break  # the imports at the top end here
    source = code.splitlines(keepends=True)
    if after == 0 and tree.body and isinstance(tree.body[0], ast.Expr) \
            and isinstance(tree.body[0].value, ast.Constant):
        after = tree.body[0].end_lineno or 0  # below the module docstring
    if after and not source[after - 1].endswith("\n"):
        source[after - 1] += "\n"
    return "".join(source[:after] + [line + "\n" for line in lines] + source[after:])


def add_missing_imports(code: str) -> tuple[str, list[str]]:
    """`code` with the missing imports of well-known names added, and the lines added."""
    lines = missing_imports(code)
    return (with_imports(code, lines), lines) if lines else (code, [])
