"""Metrics named in free text: which one metric a task description asks for.

Scope: `metric_from_text` reads the lines about evaluation first, then the whole text, and names a metric
only when exactly one compatible one is found. Nothing here scores or resolves a given name
(`metrics.specs`).
"""

from __future__ import annotations

import re

from tabcoder.metrics.specs import METRICS, check_task_type

_SEP = r"[\s_\-]*"
# Ordered: longer phrases first; each match is blanked out so that e.g. "root mean squared
# logarithmic error" is not also read as RMSE, nor "macro F1" as F1. Names starting with "_" are
# metrics we do not offer: they are blanked out (so "PR AUC" is not read as ROC AUC) but never reported.
_TEXT_PATTERNS: tuple[tuple[str, str], ...] = (
    ("_pr_auc", rf"\bpr{_SEP}auc\b|precision{_SEP}recall{_SEP}(?:curve{_SEP})?auc|area under the precision"),
    ("rmsle", rf"root{_SEP}mean{_SEP}squared?{_SEP}log(?:arithmic)?{_SEP}errors?|\brmsle\b"),
    ("_msle", rf"mean{_SEP}squared?{_SEP}log(?:arithmic)?{_SEP}errors?|\bmsle\b"),
    ("balanced_accuracy", rf"balanced{_SEP}accuracy"),
    ("macro_f1", rf"macro{_SEP}(?:averaged?{_SEP})?f[\s_\-]?1(?:{_SEP}score)?|\bf1{_SEP}macro\b"),
    ("roc_auc", rf"\broc{_SEP}auc\b|\bauc{_SEP}roc\b|\bauroc\b|\bauc\b|area under the (?:roc )?curve"
                r"|area under the receiver operating characteristic"),
    ("log_loss", rf"\blog(?:arithmic)?{_SEP}loss\b|\bcross{_SEP}entropy\b"),
    ("rmse", rf"root{_SEP}mean{_SEP}squared?{_SEP}errors?|\brmse\b"),
    ("mse", rf"mean{_SEP}squared?{_SEP}errors?|\bmse\b"),
    ("mae", rf"mean{_SEP}absolute{_SEP}errors?|\bmae\b"),
    ("r2", r"(?<![\w^])r(?:2|²|\^2|-squared| squared)(?!\w)|coefficient of determination"),
    ("f1", rf"\bf{_SEP}1(?:{_SEP}score)?\b|\bf{_SEP}(?:score|measure)\b"),
    ("accuracy", r"\baccuracy\b"),
)
_EVALUATION_LINE = re.compile(r"(?im)^.*\b(?:evaluat\w*|metric|scored|scoring)\b.*$")


def _named_metrics(text: str) -> set[str]:
    remaining = text.lower()
    found: set[str] = set()
    for name, pattern in _TEXT_PATTERNS:
        regex = re.compile(pattern)
        if regex.search(remaining):
            if not name.startswith("_"):
                found.add(name)
            remaining = regex.sub(" ", remaining)
    return found


def _pick_compatible(found: set[str], task_type: str | None) -> str | None:
    if task_type == "multiclass" and "f1" in found:
        found = (found - {"f1"}) | {"macro_f1"}  # a plain "F1" on a multiclass task means macro F1
    if task_type is not None:
        found = {name for name in found if task_type in METRICS[name].task_types}
    return next(iter(found)) if len(found) == 1 else None


def metric_from_text(text: str, task_type: str | None) -> str | None:
    """The one metric (compatible with `task_type`) that a free-text description names, else None.

    Lines that talk about evaluation/metric/scoring are searched first; the whole text only when they
    name no usable metric. Plain "F1" on a multiclass task is read as macro F1.
    """
    if not text:
        return None
    if task_type is not None:
        check_task_type(task_type)
    evaluation_lines = "\n".join(_EVALUATION_LINE.findall(text))
    if evaluation_lines:
        picked = _pick_compatible(_named_metrics(evaluation_lines), task_type)
        if picked is not None:
            return picked
    return _pick_compatible(_named_metrics(text), task_type)
