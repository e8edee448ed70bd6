"""The messages CAAFE sends: the stable task part first (system text, task, columns, rules), then what
changes each round (the proposals so far, the last error, the current columns), so llama.cpp's prefix
cache reads the long part once. Templates live in `caafe/prompts/*.j2` (strict undefined).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import jinja2
import pandas as pd

from tabcoder.profile import profile_task
from tabcoder.task import Task

Messages = list[dict[str, str]]
MAX_DESCRIPTION_CHARS = 1500
SAMPLE_ROWS = 3


def render(name: str, **variables) -> str:
    """Render the CAAFE template `name` with strict undefined variables."""
    folder = resources.files("tabcoder.caafe").joinpath("prompts")
    loader = jinja2.FunctionLoader(lambda n: folder.joinpath(n).read_text(encoding="utf-8"))
    env = jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined, autoescape=False)
    return env.get_template(name).render(**variables).strip()


def task_kind(task: Task) -> str:
    if task.task_type == "regression":
        return "regression"
    return f"{task.task_type} classification, {len(task.classes or [])} classes"


@dataclass
class ProposalPrompts:
    """Builds the messages of each proposal call for one task and its fit rows."""

    task: Task
    fit: pd.DataFrame  # id, features and target of the rows CAAFE cross-validates on
    folds: int
    use_description: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        profile = profile_task(self.task, self.fit, None, seed=self.seed)
        features = self.fit[self.task.feature_columns]
        sample = features.sample(n=min(SAMPLE_ROWS, len(features)), random_state=self.seed)
        description = self.task.description.strip() if self.use_description else ""
        self.system = render("system.j2")
        self.task_text = render(
            "task.j2", task=self.task, task_kind=task_kind(self.task), metric=self.task.metric_spec,
            description=description[:MAX_DESCRIPTION_CHARS], folds=self.folds, n_rows=len(features),
            columns=profile.table(), target_summary=profile.target_summary,
            sample_rows=sample.to_csv(index=False).strip(), examples=example_features(features))

    def next(self, *, history: list[str], columns: list[str], last_error: str | None = None,
             last_code: str | None = None) -> Messages:
        """The messages asking for the next feature, after `history` (one line per earlier proposal)."""
        ask = render("next.j2", history=history, metric=self.task.metric_spec, columns=", ".join(columns),
                     last_error=last_error, last_code=last_code)
        return [{"role": "system", "content": self.system},
                {"role": "user", "content": f"{self.task_text}\n\n{ask}"}]


def example_features(features: pd.DataFrame) -> list[str]:
    """Answers in the expected format, built from the task's own columns: a ratio of two numeric columns and
    a flag for a text column's most frequent value, where the data has such columns."""
    numeric = [c for c in features.columns if pd.api.types.is_numeric_dtype(features[c])
               and not pd.api.types.is_bool_dtype(features[c])]
    text = [c for c in features.columns if c not in numeric and features[c].notna().any()]
    examples = []
    if len(numeric) >= 2:
        a, b = numeric[0], numeric[1]
        examples.append(f"# Feature: {a}_per_{b}: {a} divided by {b}\n"
                        f"# Usefulness: the ratio of {a} to {b} can tell more than each of them alone\n"
                        f'df["{a}_per_{b}"] = df["{a}"] / df["{b}"].replace(0, np.nan)')
    if text:
        column = text[0]
        top = features[column].mode(dropna=True).iloc[0]
        name = f"{column}_is_{re.sub(r'[^0-9A-Za-z]+', '_', str(top))}"
        examples.append(f"# Feature: {name}: 1 when {column} is {top!r}, else 0\n"
                        f"# Usefulness: the most frequent value of {column} may behave differently from the rest\n"
                        f'df["{name}"] = (df["{column}"] == {top!r}).astype(int)')
    if not examples:
        column = features.columns[0]
        examples.append(f"# Feature: {column}_squared: the square of {column}\n"
                        f"# Usefulness: large values of {column} may matter more than small ones\n"
                        f'df["{column}_squared"] = df["{column}"] ** 2')
    return examples
