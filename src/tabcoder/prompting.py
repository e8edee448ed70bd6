"""Prompts: render the template files in `prompts/` into chat messages, and pull code out of replies.

Also the draft `Approach`es a tree search offers the model (the improvement `Idea`s are in `tabcoder.ideas`).

The stable part of every prompt (system text, task, data profile, rules, example) comes first and is
identical across the calls of a run, so llama.cpp's prefix cache only has to read it once.
Two styles, as in the original project: `chat` (system / user / assistant turns) and `single` (one
concatenated user message, for models without a system role).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources

import jinja2

from tabcoder.baseline import BaselinePlan
from tabcoder.ideas import IMPROVEMENT_IDEAS, METRIC_IDEAS, SCAFFOLD_FUNCTIONS, Idea
from tabcoder.profile import DataProfile, describe_submission, installed_packages
from tabcoder.task import Task, description_for_prompt

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


@dataclass(frozen=True)
class Approach:
    """A model family a tree-search draft is asked to use: `estimator` is the constructor call to write."""

    label: str  # short name, shown to the other drafts: "a linear model"
    module: str  # where the class is imported from: "sklearn.linear_model"
    estimator: str  # "LogisticRegression(max_iter=2000)"
    note: str = ""  # what else the family needs
    package: str | None = None  # a package that must be installed for it
    pipeline: str = ""  # the preparation the family needs around the estimator, "{model}" standing for it
    pipeline_imports: tuple[str, ...] = ()  # the import lines of the pipeline's names

    @property
    def class_name(self) -> str:
        return self.estimator.split("(", 1)[0]

    @property
    def returns(self) -> str:
        """What make_model returns: the estimator call, inside its pipeline when the family needs one."""
        return self.pipeline.format(model=self.estimator) if self.pipeline else self.estimator

    @property
    def imports(self) -> list[str]:
        """The import lines of the names `returns` uses."""
        return [*self.pipeline_imports, f"from {self.module} import {self.class_name}"]

    def __str__(self) -> str:
        note = f" ({self.note})" if self.note else ""
        return f"{self.label}: {self.module}.{self.estimator}{note}"


#: Model families for drafts, strongest first; each draft is asked for a different one. `{kind}` is
#: Classifier or Regressor; `{linear}` the linear model of that kind (`LINEAR_MODELS`).
DRAFT_APPROACHES: list[Approach] = [
    Approach("gradient boosting", "sklearn.ensemble",
             "HistGradientBoosting{kind}(max_iter=300, learning_rate=0.05, random_state=0)"),
    Approach("a random forest", "sklearn.ensemble",
             "RandomForest{kind}(n_estimators=300, min_samples_leaf=2, random_state=0)"),
    Approach("a linear model", "sklearn.linear_model", "{linear}",
             "it needs numbers without gaps on one scale and the categorical columns one-hot encoded",
             pipeline="make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown=\"ignore\"), categorical), "
                      "remainder=make_pipeline(SimpleImputer(strategy=\"median\"), StandardScaler())), {model})",
             pipeline_imports=("from sklearn.compose import make_column_transformer",
                               "from sklearn.impute import SimpleImputer",
                               "from sklearn.pipeline import make_pipeline",
                               "from sklearn.preprocessing import OneHotEncoder, StandardScaler")),
    Approach("LightGBM", "lightgbm", "LGBM{kind}(n_estimators=400, learning_rate=0.05, random_state=0, verbose=-1)",
             package="lightgbm"),
    Approach("extremely randomised trees", "sklearn.ensemble", "ExtraTrees{kind}(n_estimators=300, random_state=0)"),
]
LINEAR_MODELS = {"Classifier": "LogisticRegression(max_iter=2000)",
                 "Regressor": "RidgeCV(alphas=[0.1, 1.0, 10.0, 100.0])"}
#: The sentences that introduce the example script (task.j2) and ask a draft to start from it (draft.j2);
#: `without_example` finds them to rewrite a prompt as a run without the example words it.
EXAMPLE_INTRO = ("A correct baseline script, to start from and improve (for example with better features, tuned "
                 "settings or another model):")
EXAMPLE_SWAP = "Start from the baseline script above:"


def dropped_arguments(old_call: str | None, new_call: str) -> list[str]:
    """The keyword arguments of `old_call` that `new_call` does not take (`categorical_features=categorical`
    when a random forest replaces gradient boosting): a small model tends to carry them over to the new class."""
    if not old_call or old_call.split("(", 1)[0].strip() == new_call.split("(", 1)[0].strip():
        return []  # the same class takes the same arguments
    kept = set(re.findall(r"(\w+)\s*=", new_call))
    return [name for name in re.findall(r"(\w+)\s*=", old_call) if name not in kept]


def approach_label(approach: str) -> str:
    """The short name of a draft approach ("gradient boosting: ..." -> "gradient boosting")."""
    return approach.split(":", 1)[0].strip()


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


def function_header(code: str, name: str) -> str | None:
    """The `def` line(s) of the module-level function `name` in `code` (decorators and docstring left out), or
    None when `code` does not parse or has no such function."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    lines = code.splitlines()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name and node.body:
            return "\n".join(lines[node.lineno - 1:node.body[0].lineno - 1]).rstrip() or None
    return None


def reply_start(code: str, function: str, imports: Sequence[str] = ()) -> str | None:
    """The start of a reply that rewrites `function` of `code`, for a backend that continues a reply: a python
    fence, the `imports` lines, and the function's `def` line as `code` has it. None without such a function."""
    header = function_header(code, function)
    if header is None:
        return None
    above = "".join(f"{line}\n" for line in imports) + ("\n\n" if imports else "")
    return f"```python\n{above}{header}\n"


_FRAME = re.compile(r'File "[^"]*solution\.py", line \d+, in (\S+)')


def failing_function(code: str, traceback: str | None) -> str | None:
    """The module-level function of `code` in which `traceback` (of running it as solution.py) last passed
    through the script; None for an error at module level or outside any function of `code`."""
    frames = _FRAME.findall(traceback or "")
    if not frames or function_header(code, frames[-1]) is None:
        return None
    return frames[-1]


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
    guidance: str = ""  # an extra section, e.g. CAAFE's accepted features (tabcoder.caafe.solution_guidance)
    uses_features: bool = False  # the example calls add_features (CAAFE "usage" with features kept)
    script_in_user: bool = False  # show the script to change in the user's turn, not as the model's own reply

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

    def _example_estimator(self) -> str:
        return self.plan.estimator(self.task).split("(", 1)[0]

    def _example_model_call(self) -> str:
        """The model the baseline's make_model returns (a draft's approach replaces it)."""
        return self.plan.estimator(self.task).replace("random_state=0", "categorical_features=categorical, "
                                                                        "random_state=0")

    @property
    def plan(self) -> BaselinePlan:
        """What the data profile decides for the baseline script (`tabcoder.baseline`)."""
        return BaselinePlan.from_profile(self.task, self.profile)

    def example(self) -> str:
        """The baseline script: the example the prompt shows, and attempt 0 when the harness runs it."""
        plan = self.plan
        call = self._example_model_call()
        return self._render(
            "example.py.j2",
            estimator=self._example_estimator(),
            model_call=call,
            target=repr(self.task.target),
            id_column=repr(self.task.id_column),
            drop=repr(list(plan.drop)),
            dates=repr(list(plan.dates)),
            log_target=plan.log_target,
            regression=self.task.task_type == "regression",
            positive_label=repr(_python_value(self.task.positive_label)),
            output=self._output_kind(),
            add_features=self.uses_features,
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
            "description": description_for_prompt(task.description) if self.use_description else "",
            "profile": self.profile,
            "submission_contract": describe_submission(task),
            "packages": ", ".join(installed_packages()),
            "timeout_minutes": max(1, int(self.timeout // 60)),
            "metric_tips": [METRIC_TIPS[spec.name]] if spec.name in METRIC_TIPS else [],
            "example": self.example() if self.show_example else "",
            "example_intro": EXAMPLE_INTRO,
            "guidance": self.guidance,
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
               history: list[str], idea: str | None = None, edit_format: str = "whole",
               function: str | None = None) -> Messages:
        """Ask for a new script given the previous one, its feedback, the reflections and the attempt history;
        an improvement step names one `idea` to apply. `edit_format`: what to reply with (tabcoder.edits);
        with the functions format, `function` (the caller's choice: `edit_target`, or a repair's target) is the
        one asked for."""
        ask = self._render("revise.j2", feedback=feedback, failed=failed, reflections=reflections,
                           history=history, idea=idea, edit_format=edit_format,
                           function=function if edit_format == "functions" else None)
        return self._messages(self.task_text, code, ask)

    # -- the calls of a tree search ------------------------------------------------------------------
    def draft_with(self, approach: Approach, earlier: list[str]) -> Messages:
        """A draft asked for one modelling `approach` (as a swap of the example's model when the example is
        shown), told which approaches the `earlier` drafts use."""
        replaced = self._example_model_call() if self.show_example else None
        ask = self._render("draft.j2", approach=approach, replaced=replaced, earlier=list(earlier),
                           example_swap=EXAMPLE_SWAP, dropped=dropped_arguments(replaced, approach.estimator))
        return self._messages(self.task_text, None, ask)

    def draft_swap(self, approach: Approach, code: str, feedback: str, *, memory: str) -> Messages:
        """A draft asked for as an edit of the baseline script `code` (shown, with its `feedback`): the function
        that makes the model returns the `approach`'s model, everything else stays. Asked for with the example
        shown and the functions edit format, so the model writes one short function, not a whole script."""
        dropped = dropped_arguments(self._example_model_call(), approach.estimator)
        idea = (f"Replace the model with {approach.module}.{approach.estimator}: import {approach.class_name} from "
                f"{approach.module} (the import line goes above make_model) and make make_model return "
                f"{approach.returns}")
        idea += f" ({approach.note})" if approach.note else ""
        idea += f". {approach.class_name} takes no {' or '.join(dropped)} argument." if dropped else "."
        function = "make_model" if re.search(r"^def make_model\(", code, re.MULTILINE) else None
        ask = self._render("improve.j2", feedback=feedback, idea=idea, memory=memory, tried=[],
                           metric=self.task.metric_spec, edit_format="functions", function=function)
        return self._messages(self.task_text, code, ask)

    def debug(self, code: str, feedback: str, *, reflection: str | None, memory: str,
              edit_format: str = "whole", function: str | None = None) -> Messages:
        """Ask for the smallest fix of a failed script (with the functions format and a `function`: the new
        version of that function only)."""
        ask = self._render("debug.j2", feedback=feedback, reflection=reflection, memory=memory,
                           edit_format=edit_format, function=function if edit_format == "functions" else None)
        return self._messages(self.task_text, code, ask)

    def improve(self, code: str, feedback: str, *, idea: str | None, memory: str,
                tried: Sequence[str] = (), edit_format: str = "whole") -> Messages:
        """Ask for one atomic change to a working script: `idea`, or without one a change of the model's
        own choice other than those `tried` on this script already."""
        ask = self._render("improve.j2", feedback=feedback, idea=idea, memory=memory, tried=list(tried),
                           metric=self.task.metric_spec, edit_format=edit_format,
                           function=self.edit_target(idea, code) if edit_format == "functions" else None)
        return self._messages(self.task_text, code, ask)

    def memory(self, lines: list[str], best: str | None) -> str:
        """The bounded summary of earlier attempts shown with a debug or improvement step."""
        return self._render("memory.j2", lines=lines, best=best, metric=self.task.metric_spec)

    def approaches(self) -> list[Approach]:
        """Modelling approaches for drafts, strongest first, only those whose package is installed."""
        kind = "Regressor" if self.task.task_type == "regression" else "Classifier"
        installed = {line.split()[0] for line in installed_packages()}
        return [replace(a, estimator=a.estimator.format(kind=kind, linear=LINEAR_MODELS[kind]))
                for a in DRAFT_APPROACHES if a.package is None or a.package in installed]

    def edit_target(self, idea: str | None, code: str) -> str | None:
        """The one function of the baseline's scaffold that the listed idea `idea` changes, when `code` still
        defines it (a functions edit then asks for that function only); None for other ideas."""
        found = next((i for i in self.ideas() if i.text == idea), None)
        name = SCAFFOLD_FUNCTIONS.get(found.kind) if found is not None else None
        return name if name is not None and re.search(rf"^def {name}\(", code, re.MULTILINE) else None

    def ideas(self) -> list[Idea]:
        """The single changes an improvement step proposes, in order."""
        kind = "regression" if self.task.task_type == "regression" else "classification"
        extra = METRIC_IDEAS.get(self.task.metric)
        return ([extra] if extra else []) + IMPROVEMENT_IDEAS[kind]

    def _messages(self, task_text: str, code: str | None = None, ask: str | None = None) -> Messages:
        """The chat messages of a call. The script to change follows the task as the model's own earlier reply,
        or with `script_in_user` inside the user's turn ("# The current script"): a small model shown its
        own reply tends to send it back unchanged, where an edit is asked for."""
        if code is not None and self.script_in_user and self.style != "single":
            user = f"{task_text}\n\n# The current script\n{fence(code)}" + (f"\n\n{ask}" if ask else "")
            return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]
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


_EXAMPLE_BLOCK = re.compile(r"\n*^" + re.escape(EXAMPLE_INTRO) + r"\n```python\n.*?^```[ \t]*$", re.DOTALL | re.MULTILINE)
_EXAMPLE_SWAP = re.compile(r"\n^" + re.escape(EXAMPLE_SWAP) + r" [^\n]*$", re.MULTILINE)


def without_example(messages: Messages) -> Messages | None:
    """The same messages as a run with `show_example=False` would send, or None when no example is shown.

    Used to make fine-tuning examples that teach writing a working script without the example to copy.
    """
    changed = False
    out = []
    for message in messages:
        content = message["content"]
        if message["role"] != "assistant":
            stripped = _EXAMPLE_SWAP.sub("", _EXAMPLE_BLOCK.sub("", content))
            changed = changed or stripped != content
            content = stripped
        out.append({**message, "content": content})
    return out if changed else None


def _python_value(value: object) -> object:
    """numpy scalars -> plain Python, so repr() gives a literal the generated code can use."""
    return value.item() if hasattr(value, "item") else value
