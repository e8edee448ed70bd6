"""The single changes an improvement step can ask for: the harness's generic ideas (`Idea` records, tried in
order, metric-specific ones first), the function of the baseline's scaffold each kind of idea changes, and
the change a model's reflection names on its `Change:` line.

An idea's `text` is what the model is shown and what the journal records; nothing parses it back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Idea:
    """One single change an improvement step can ask for. `text` is what the model is shown (and what the
    journal records as the attempt's idea); `kind` says what the change is ("model", "tuning", "features",
    "ensemble", "imbalance", "target"), and for a "model" change `target` is the estimator class it brings
    in, so that the idea is skipped for a script that already uses that class."""

    kind: str
    text: str
    target: str | None = None

    @classmethod
    def replace_model(cls, module: str, estimator: str) -> Idea:
        """The change to `module.estimator`, e.g. ("sklearn.ensemble", "HistGradientBoostingClassifier(...)")."""
        return cls("model", f"Replace the model with {module}.{estimator}.", target=estimator.split("(", 1)[0])

    def applies_to(self, code: str | None) -> bool:
        """False when the idea asks for a model class that `code` already uses, or for a log target in a script
        that already decides it (the baseline's `LOG_TARGET` constant, set from the target's skewness)."""
        if code and self.kind == "target" and re.search(r"^LOG_TARGET\s*=", code, re.MULTILINE):
            return False
        return not code or self.kind != "model" or self.target is None or self.target not in code

    def __str__(self) -> str:
        return self.text


_TUNING = Idea("tuning", "Tune the main hyperparameters of the model (for example more trees or iterations, a smaller "
                         "learning rate, a limit on depth or a minimum number of samples per leaf).")
_LOG_TARGET = Idea("target", "If the target is positive and skewed, train on numpy.log1p(target) and predict "
                             "numpy.expm1(prediction).")
_BALANCED = Idea("imbalance", "Handle the class imbalance: use class_weight=\"balanced\".")

#: Generic single changes for an improvement step, tried in order (metric-specific ones first).
IMPROVEMENT_IDEAS: dict[str, list[Idea]] = {
    "classification": [
        Idea.replace_model("sklearn.ensemble",
                           "HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=0)"),
        _TUNING,
        Idea("features", "Add a few new features computed from existing columns (ratios, differences, products, or "
                         "counts) that could plausibly help predict the target."),
        Idea("ensemble", "Average the predicted probabilities of two different models (for example gradient boosting "
                         "and a random forest or a logistic regression on scaled features)."),
    ],
    "regression": [
        Idea.replace_model("sklearn.ensemble",
                           "HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, random_state=0)"),
        _TUNING,
        Idea("features", "Add a few new features computed from existing columns (ratios, differences, products, or "
                         "logs) that could plausibly help predict the target."),
        Idea("ensemble", "Average the predictions of two different models (for example gradient boosting and a "
                         "random forest)."),
    ],
}
METRIC_IDEAS: dict[str, Idea] = {
    "f1": Idea("imbalance", "Handle the class imbalance: use class_weight=\"balanced\" (or choose the probability "
                            "threshold that maximises F1 on a held-out part of train)."),
    "macro_f1": _BALANCED,
    "balanced_accuracy": _BALANCED,
    "rmse": _LOG_TARGET,
    "mae": _LOG_TARGET,
}

#: The function of the baseline's scaffold (prompts/example.py.j2) each kind of listed idea changes.
SCAFFOLD_FUNCTIONS = {"model": "make_model", "tuning": "make_model", "imbalance": "make_model",
                      "ensemble": "make_model", "features": "add_features"}


_CHANGE_LINE = re.compile(r"^[\s*_>#-]*change[\s*_]*:[\s*_]*(.+?)[\s*_`]*$", re.IGNORECASE | re.MULTILINE)
MAX_IDEA_CHARS = 300


def proposed_change(reflection: str | None) -> str | None:
    """The change a reflection names on its `Change:` line (the last one), or None."""
    found = _CHANGE_LINE.findall(reflection or "")
    if not found:
        return None
    text = found[-1].strip().strip("`\"'").strip()
    return text[:MAX_IDEA_CHARS] if len(text) >= 8 else None


def normalise_idea(text: str) -> str:
    """An idea's words, lower case, without punctuation: two ideas equal under this ask for the same change."""
    return " ".join(re.findall(r"[a-z0-9_]+", text.lower()))
