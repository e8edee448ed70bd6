"""Prompts: render the template files in `prompts/` into chat messages, and pull code out of replies.

The stable part of every prompt (system text, task, data profile, rules, example) comes first and is
identical across the calls of a run, so llama.cpp's prefix cache only has to read it once.
Two styles, as in the original project: `chat` (system / user / assistant turns) and `single` (one
concatenated user message, for models without a system role).
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass
from importlib import resources

import jinja2

from tabcoder.profile import DataProfile, describe_submission, installed_packages
from tabcoder.task import Task

Messages = list[dict[str, str]]

#: Generic advice per metric (what the metric rewards), never per task.
METRIC_TIPS: dict[str, str] = {
    "roc_auc": "The metric ranks predicted probabilities: submit predict_proba values, not 0/1 labels.",
    "log_loss": "The metric punishes confident mistakes: submit well-calibrated predict_proba values, never exactly 0 or 1.",
    "f1": "The metric is the F1 score of the positive class: if that class is rare, use class_weight=\"balanced\" or similar.",
    "macro_f1": "Every class counts equally in macro F1: consider class_weight=\"balanced\".",
    "balanced_accuracy": "Every class counts equally in balanced accuracy: consider class_weight=\"balanced\".",
    "rmsle": "The metric is on a log scale: train on numpy.log1p(target) and predict numpy.expm1(prediction); predictions must not be negative.",
    "mae": "The metric is the mean absolute error: a loss that is robust to outliers can help.",
}

#: Generic single changes for an improvement step, tried in order (metric-specific ones first).
IMPROVEMENT_IDEAS: dict[str, list[str]] = {
    "classification": [
        "Replace the model with sklearn.ensemble.HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=0).",
        "Tune the main hyperparameters of the model (for example more trees or iterations, a smaller learning rate, a limit on depth or a minimum number of samples per leaf).",
        "Add a few new features computed from existing columns (ratios, differences, products, or counts) that could plausibly help predict the target.",
        "Average the predicted probabilities of two different models (for example gradient boosting and a random forest or a logistic regression on scaled features).",
    ],
    "regression": [
        "Replace the model with sklearn.ensemble.HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, random_state=0).",
        "Tune the main hyperparameters of the model (for example more trees or iterations, a smaller learning rate, a limit on depth or a minimum number of samples per leaf).",
        "Add a few new features computed from existing columns (ratios, differences, products, or logs) that could plausibly help predict the target.",
        "Average the predictions of two different models (for example gradient boosting and a random forest).",
    ],
}
METRIC_IDEAS: dict[str, str] = {
    "f1": "Handle the class imbalance: use class_weight=\"balanced\" (or choose the probability threshold that maximises F1 on a held-out part of train).",
    "macro_f1": "Handle the class imbalance: use class_weight=\"balanced\".",
    "balanced_accuracy": "Handle the class imbalance: use class_weight=\"balanced\".",
    "rmse": "If the target is positive and skewed, train on numpy.log1p(target) and predict numpy.expm1(prediction).",
    "mae": "If the target is positive and skewed, train on numpy.log1p(target) and predict numpy.expm1(prediction).",
}

_CODE_BLOCK = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL | re.IGNORECASE)


def _env() -> jinja2.Environment:
    loader = jinja2.FunctionLoader(lambda name: resources.files("tabcoder.prompts").joinpath(name).read_text())
    return jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
                              autoescape=False)


def extract_code(text: str) -> str | None:
    """The Python script in a reply: the longest fenced block, or the whole reply if it is bare code."""
    blocks = [b.strip() for b in _CODE_BLOCK.findall(text) if b.strip()]
    if blocks:
        return max(blocks, key=len)
    stripped = text.strip()
    if re.search(r"^\s*(import|from)\s+\w+", stripped, re.MULTILINE) and "submission" in stripped:
        return stripped
    return None


def normalise_code(code: str) -> str:
    """Code without comments, blank lines and trailing spaces: two scripts equal under this do the same."""
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(code).readline)
                  if t.type not in (tokenize.COMMENT, tokenize.NL)]
        return tokenize.untokenize((t.type, t.string) for t in tokens).strip()
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return "\n".join(line.rstrip() for line in code.splitlines() if line.strip())


def fence(code: str) -> str:
    return f"```python\n{code.strip()}\n```"


@dataclass
class PromptBuilder:
    """Builds the messages of each LLM call of a run from one task, its profile and the prompt options."""

    task: Task
    profile: DataProfile
    timeout: float
    style: str = "chat"
    use_description: bool = True
    show_example: bool = True

    def __post_init__(self) -> None:
        self._env = _env()
        self.system = self._render("system.j2")
        self.task_text = self._render("task.j2", **self._task_vars())

    def _render(self, name: str, **variables) -> str:
        return self._env.get_template(name).render(**variables).strip()

    def _output_kind(self) -> str:
        spec = self.task.metric_spec
        if self.task.task_type == "regression":
            return "number"
        if spec.needs_proba:
            return "binary_proba" if self.task.task_type == "binary" else "multiclass_proba"
        return "label"

    def example(self) -> str:
        regression = self.task.task_type == "regression"
        return self._render(
            "example.py.j2",
            estimator="RandomForestRegressor" if regression else "RandomForestClassifier",
            target=repr(self.task.target),
            id_column=repr(self.task.id_column),
            positive_label=repr(_python_value(self.task.positive_label)),
            output=self._output_kind(),
        )

    def _task_vars(self) -> dict:
        task, spec = self.task, self.task.metric_spec
        if task.task_type == "regression":
            kind = "regression"
        else:
            kind = f"{task.task_type} classification, {len(task.classes or [])} classes"
        return {
            "task": task,
            "task_kind": kind,
            "metric": spec,
            "positive_label_repr": repr(_python_value(task.positive_label)),
            "description": task.description.strip() if self.use_description else "",
            "profile": self.profile,
            "submission_contract": describe_submission(task),
            "packages": ", ".join(installed_packages()),
            "timeout_minutes": max(1, int(self.timeout // 60)),
            "metric_tips": [METRIC_TIPS[spec.name]] if spec.name in METRIC_TIPS else [],
            "example": self.example() if self.show_example else "",
        }

    # -- the three kinds of call -------------------------------------------------------------------
    def draft(self) -> Messages:
        """The first attempt: task and data only."""
        return self._messages(self.task_text)

    def reflect(self, code: str, feedback: str, *, failed: bool) -> Messages:
        """Ask for a short self-reflection on `code` given the harness's `feedback`."""
        ask = self._render("reflect.j2", feedback=feedback, failed=failed, metric=self.task.metric_spec)
        return self._messages(self.task_text, code, ask)

    def revise(self, code: str, feedback: str, *, failed: bool, reflections: list[str],
               history: list[str], idea: str | None = None) -> Messages:
        """Ask for a new script given the previous one, its feedback, the reflections and the attempt history;
        an improvement step names one `idea` to apply."""
        ask = self._render("revise.j2", feedback=feedback, failed=failed, reflections=reflections,
                           history=history, idea=idea)
        return self._messages(self.task_text, code, ask)

    def ideas(self) -> list[str]:
        """The single changes an improvement step proposes, in order."""
        kind = "regression" if self.task.task_type == "regression" else "classification"
        extra = METRIC_IDEAS.get(self.task.metric)
        return ([extra] if extra else []) + IMPROVEMENT_IDEAS[kind]

    def _messages(self, task_text: str, code: str | None = None, ask: str | None = None) -> Messages:
        if self.style == "single":
            parts = [self.system, task_text]
            if code is not None:
                parts.append("# Previous script\n" + fence(code))
            if ask is not None:
                parts.append(ask)
            return [{"role": "user", "content": "\n\n".join(parts)}]
        messages = [{"role": "system", "content": self.system}, {"role": "user", "content": task_text}]
        if code is not None:
            messages.append({"role": "assistant", "content": fence(code)})
        if ask is not None:
            messages.append({"role": "user", "content": ask})
        return messages


def _python_value(value: object) -> object:
    """numpy scalars -> plain Python, so repr() gives a literal the generated code can use."""
    return value.item() if hasattr(value, "item") else value
