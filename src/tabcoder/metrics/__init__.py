"""Evaluation metrics: their specs, name resolution, detection in free text, and comparable scores.

Scope: pure computation on arrays of labels / probabilities / numbers. Nothing here reads files or
knows about tasks; `grading` validates submissions before calling `MetricSpec.score`. One module an idea:

- `functions`: the metric functions themselves;
- `specs`: `MetricSpec` (direction, probabilities or labels, task types), `METRICS`, `get_metric` (names
  and aliases), the metrics of a task type and its default;
- `text`: `metric_from_text`, the one metric a free-text description names;
- `score`: `Score`, a value that compares by *better*, and `gain`.

The names are importable from `tabcoder.metrics` itself.
"""

from tabcoder.metrics.score import Score, gain
from tabcoder.metrics.specs import METRICS, TASK_TYPES, MetricSpec, default_metric, get_metric, metrics_for
from tabcoder.metrics.text import metric_from_text

__all__ = [
    "METRICS",
    "TASK_TYPES",
    "MetricSpec",
    "Score",
    "default_metric",
    "gain",
    "get_metric",
    "metric_from_text",
    "metrics_for",
]
