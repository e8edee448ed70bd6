"""What kind of value a classification task's submission holds, as its sample submission or its description
shows it: class labels, the probability of the positive class, one probability column per class, or a number.

Scope: `sample_kind` reads the values and columns of a sample submission whose first column is the id and
whose other columns are the target or the class names; `description_kind` reads the description's phrases
about the output ("predict either X or Y" with X and Y classes of the target, "class labels", "predicted
label", a probability asked for in a sentence that asks to predict/submit/output); `metric_for_kind` is the
metric such a kind calls for when nothing names one, and `fits` whether a metric fits a kind. Each answer is an
`OutputKind` carrying the evidence notes quote. Nothing here raises for a sample that does not fit (it is
ignored later, see `checks`), reads metric names (`metrics.text`) or writes notes (`inference.resolve_metric`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from tabcoder.metrics import MetricSpec
from tabcoder.task.layouts import Sources

Kind = Literal["label", "proba", "class_proba", "number"]

#: Longest phrase of the description a note quotes, in characters.
MAX_QUOTED = 60
#: Most sample values a note lists.
_MAX_VALUES_LISTED = 5
#: Most spellings of one class a sample of labels is taken to use (" yes", "YES", ...).
_MAX_SPELLINGS = 4
#: More classes than this and the description is not searched for "either X or Y".
_MAX_CLASSES_MATCHED = 100

_ASK = re.compile(r"\b(?:predict\w*|submi(?:t|ts|tted|tting|ssions?)|outputs?|output(?:ted|ting)|returns?|"
                  r"estimat\w*|forecast\w*)\b", re.IGNORECASE)
# Not "no": it is often a class ("predict either yes or no").
_NEGATION = re.compile(r"\b(?:not|never|instead\s+of|rather\s+than)\b|n't\b", re.IGNORECASE)
_PROBABILITY = re.compile(r"\bprobabilit(?:y|ies)\b", re.IGNORECASE)
_LABEL_PHRASE = re.compile(r"\bclass[\s_-]+labels?\b|\bpredicted[\s_-]+(?:class[\s_-]+)?labels?\b"
                           r"|\bpredicted[\s_-]+class(?:es)?\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_MARKER = re.compile(r"^(?:[#>*+-]+|\d+[.)])\s+")  # a heading, quote or list item
_ABBREVIATION = re.compile(r"(?:\b(?:e\.g|i\.e|etc|vs|cf|approx|incl|resp)\.)$", re.IGNORECASE)
_QUOTES = "\"'`\u201c\u201d\u2018\u2019*"


@dataclass(frozen=True)
class OutputKind:
    """What a sample submission or a description asks a submission to hold, and the evidence for a note."""

    kind: Kind
    source: str  # the file that says it: "sample_submission.csv", "description.md"
    evidence: str  # what it says, e.g. 'holds class labels (False, True)', 'asks for labels ("predict ...")'

    def __str__(self) -> str:
        return f"{self.source} {self.evidence}"


def usable_sample(sources: Sources, id_column: str | None) -> pd.DataFrame | None:
    """The raw sample submission when it can say something: its first column is `id_column` (None when the id
    is generated) and the task has a test table; else None."""
    sample = sources.sample_submission
    if sample is None or id_column is None or sources.test is None or len(sample.columns) < 2:
        return None
    return sample if sample.columns[0] == id_column else None


def class_columns(sample: pd.DataFrame | None, id_column: str, classes: list | None) -> list[str] | None:
    """The sample's columns after the id, as text, when they are exactly the class names in some order."""
    if sample is None or not classes or len(sample.columns) < 2 or sample.columns[0] != id_column:
        return None
    names = [str(c) for c in sample.columns[1:]]
    wanted = [str(c) for c in classes]
    if len(names) == len(wanted) and len(set(wanted)) == len(wanted) and sorted(names) == sorted(wanted):
        return names
    return None


# --------------------------------------------------------------------------- the sample submission


def sample_kind(sources: Sources, *, id_column: str | None, target: str, task_type: str,
                classes: list | None) -> OutputKind | None:
    """The kind the sample submission's values show, or None when there is no usable sample or it shows none.

    Class labels: every value is a class of the target (bools, ints, text; text leniently). Probabilities
    (binary): float values in [0, 1] that are not class labels. One column per class: the columns after the id
    are the class names. Numbers: a regression target column with numeric values."""
    sample = usable_sample(sources, id_column)
    if sample is None:
        return None
    name = sources.sample_name
    per_class = class_columns(sample, str(id_column), classes) if task_type != "regression" else None
    if per_class is not None:
        return OutputKind("class_proba", name, f"holds one probability column per class ({', '.join(per_class)})")
    if list(sample.columns[1:]) != [target]:
        return None
    values = sample[target].dropna()
    if values.empty:
        return None
    if task_type == "regression":
        return OutputKind("number", name, "holds numbers") if _is_number_column(values) else None
    distinct = _distinct(values)
    few = len(distinct) <= _MAX_SPELLINGS * len(classes or [])  # more distinct values are not labels
    if few and all(_is_class(v, classes or []) for v in distinct):
        return OutputKind("label", name, f"holds class labels ({_values_listed(distinct)})")
    if task_type == "binary" and pd.api.types.is_float_dtype(values) and bool(values.between(0, 1).all()):
        return OutputKind("proba", name, f"holds probabilities ({_values_listed(distinct)})")
    return None


def _is_number_column(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _distinct(values: pd.Series) -> list:
    distinct = pd.unique(values).tolist()
    try:
        return sorted(distinct)
    except TypeError:
        return sorted(distinct, key=lambda v: (type(v).__name__, str(v)))


def _values_listed(values: list) -> str:
    shown = [_clip(str(v), 20) for v in values[:_MAX_VALUES_LISTED]]
    return ", ".join(shown) + (", …" if len(values) > _MAX_VALUES_LISTED else "")


def _is_class(value: Any, classes: list) -> bool:
    """Whether a sample value is a class label: a bool equal to a bool class, an integer equal to a numeric class,
    a whole float only where the classes are floats (a decimal point otherwise means a probability), text equal
    to a class as stripped text (then case-insensitive); a bool also as the text of a class ('true')."""
    if isinstance(value, (bool, np.bool_)):
        return any(isinstance(c, (bool, np.bool_)) and bool(c) == bool(value) for c in classes) or \
            _text_in(str(bool(value)), classes)
    if isinstance(value, (int, np.integer)):
        return any(_numeric_class(c) and c == value for c in classes) or _text_in(str(value), classes)
    if isinstance(value, (float, np.floating)):
        return any(isinstance(c, (float, np.floating)) and c == value for c in classes)
    if isinstance(value, str):
        return _text_in(value, classes)
    return False


def _numeric_class(c: Any) -> bool:
    return isinstance(c, (int, float, np.integer, np.floating)) and not isinstance(c, (bool, np.bool_))


def _text_in(text: str, classes: list) -> bool:
    text = text.strip()
    return any(str(c).strip() == text for c in classes) or \
        any(str(c).strip().lower() == text.lower() for c in classes)


# --------------------------------------------------------------------------- the description


def description_kind(text: str, *, task_type: str, classes: list | None, source: str) -> OutputKind | None:
    """The kind the description's phrases ask for, or None when it asks for none or for both labels and
    probabilities. Only sentences that ask to predict/submit/output/estimate count, and none with a negation."""
    if task_type == "regression" or not text:
        return None
    source = source or "the description"
    found: dict[str, str] = {}  # "label" / "proba" -> the first phrase that asks for it
    either = _either_pattern(classes or [])
    for sentence in _sentences(text):
        if not _ASK.search(sentence) or _NEGATION.search(sentence):
            continue
        pair = either.search(sentence) if either is not None else None
        if pair is not None and pair.group("x").lower() == pair.group("y").lower():
            pair = None
        phrase = _LABEL_PHRASE.search(sentence)
        proba = _PROBABILITY.search(sentence)
        if (pair or phrase) and proba:
            continue  # labels and probabilities in one sentence: it says neither clearly
        if pair is not None:
            found.setdefault("label", pair.group(0))
        elif phrase is not None:
            found.setdefault("label", _around(sentence, phrase))
        elif proba is not None:
            found.setdefault("proba", _around(sentence, proba))
    if len(found) != 1:
        return None
    if "label" in found:
        return OutputKind("label", source, f'asks for labels ("{_clip(found["label"])}")')
    return OutputKind("proba", source, f'asks for probabilities ("{_clip(found["proba"])}")')


def _sentences(text: str) -> list[str]:
    """The text's sentences, each on one line: a blank line, a markdown heading and a list item end one, and
    so does . ! ? before a space, but not after "e.g." and the like; list and quote markers are dropped."""
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        stripped = line.strip()
        marker = _MARKER.match(stripped)
        if not stripped or marker:
            blocks.append([])
        if stripped:
            blocks[-1].append(stripped[marker.end():] if marker else stripped)
        if marker and stripped.startswith("#"):  # a heading is a block of its own
            blocks.append([])
    sentences: list[str] = []
    for block in blocks:
        joined = False
        for part in _SENTENCE_END.split(" ".join(block)):
            if not part:
                continue
            if joined:
                sentences[-1] += " " + part
            else:
                sentences.append(part)
            joined = bool(_ABBREVIATION.search(part))
    return sentences


def _either_pattern(classes: list) -> re.Pattern[str] | None:
    """"predict … either X or Y" with X and Y class names (any case, optionally quoted)."""
    names = sorted({str(c).strip() for c in classes if str(c).strip()}, key=len, reverse=True)
    if len(names) < 2 or len(names) > _MAX_CLASSES_MATCHED:
        return None
    name = "|".join(re.escape(n) for n in names)
    quote = f"[{re.escape(_QUOTES)}]*"
    return re.compile(
        rf"{_ASK.pattern}[^.!?]{{0,60}}?\beither\s+{quote}(?P<x>{name}){quote}\s*,?\s+or\s+"
        rf"{quote}(?P<y>{name}){quote}(?!\w|\.\d)",
        re.IGNORECASE,
    )


def _around(sentence: str, match: re.Match[str]) -> str:
    """The sentence, or about MAX_QUOTED characters of it around the match, cut between words."""
    if len(sentence) <= MAX_QUOTED:
        return sentence
    middle = (match.start() + match.end()) // 2
    start = max(0, min(middle - MAX_QUOTED // 2, len(sentence) - MAX_QUOTED))
    end = start + MAX_QUOTED
    if start > 0 and sentence.find(" ", start, match.start()) >= 0:
        start = sentence.find(" ", start, match.start()) + 1
    if end < len(sentence) and sentence.rfind(" ", match.end(), end) >= 0:
        end = sentence.rfind(" ", match.end(), end)
    return ("…" if start > 0 else "") + sentence[start:end].strip() + ("…" if end < len(sentence) else "")


def _clip(text: str, limit: int = MAX_QUOTED) -> str:
    return text if len(text) <= limit + 2 else text[:limit].rstrip() + "…"


# --------------------------------------------------------------------------- kinds and metrics


def metric_for_kind(kind: OutputKind, task_type: str) -> str | None:
    """The metric a kind calls for when nothing names one: labels -> accuracy, probabilities -> roc_auc
    (binary) or log_loss (multiclass), one column per class -> log_loss; None for numbers (the default)."""
    if task_type == "regression" or kind.kind == "number":
        return None
    if kind.kind == "label":
        return "accuracy"
    if kind.kind == "proba" and task_type == "binary":
        return "roc_auc"
    return "log_loss"


def fits(kind: OutputKind, spec: MetricSpec) -> bool:
    """Whether a metric scores the kind of value asked for: labels for a label metric, else probabilities."""
    if kind.kind == "number":
        return not spec.needs_proba
    return spec.needs_proba == (kind.kind != "label")


def metric_suggestion(kind: OutputKind, task_type: str) -> str:
    """'a label metric such as accuracy' / 'a probability metric such as roc_auc' for a kind."""
    metric = metric_for_kind(kind, task_type)
    return f"a {'label' if kind.kind == 'label' else 'probability'} metric such as {metric}"
