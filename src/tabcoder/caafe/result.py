"""What a CAAFE run leaves: every proposal with its CV scores and fate, the accepted feature code, and the
files written for it (`features.py`, `proposals.csv`, `proposals.md`, `caafe.json`).

Scores are stored as plain floats (JSON-serialisable) with the metric's name and direction; the `Score`
value objects are derived from them.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tabcoder.caafe.code import FeatureBlock, assigned_columns
from tabcoder.metrics import Score

TABLE_COLUMNS = ["proposal", "kept", "reason", "score_without", "score_with", "gain_pct", "t", "added", "dropped",
                 "error", "code"]


@dataclass
class Proposal:
    """One feature proposal: the code, the model's reason, the CV scores without / with it, and the decision."""

    index: int
    code: str | None
    reason: str = ""
    kept: bool = False
    error: str | None = None  # why the code could not be evaluated (shown to the model)
    score_without: float | None = None
    score_with: float | None = None
    gain: float | None = None  # relative, direction-aware: +0.01 = 1 % better
    t: float | None = None  # paired t statistic of the per-fold differences (positive = better)
    added: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    response: str = ""  # the model's whole reply
    repeats: int | None = None  # the earlier proposal whose code this one repeats

    @property
    def label(self) -> str:
        """A short name: the columns it adds or drops, else those its code assigns, else the kind of failure."""
        parts = [f"+{c}" for c in self.added] + [f"-{c}" for c in self.dropped]
        if not parts and self.code:
            parts = [f"{c} =" for c in assigned_columns(self.code)]
        if parts:
            return " ".join(parts)
        return "(no code)" if not self.code else "(edits columns in place)"

    def outcome(self, metric: str) -> str:
        """One line for the model and for progress output."""
        if self.error:
            return f"failed: {self.error}"
        verdict = "kept" if self.kept else "discarded"
        gain = "" if self.gain is None else f", {self.gain * 100:+.2f}%"
        return f"{verdict} ({metric} {fmt_value(self.score_without)} -> {fmt_value(self.score_with)}{gain})"


@dataclass
class CaafeResult:
    """The outcome of `run_caafe`: accepted code (`feature_code` defines `add_features(df)`), all proposals,
    and the CV score of the base model before and after."""

    task: str
    target: str
    id_column: str
    metric: str
    greater_is_better: bool
    feature_code: str
    blocks: list[FeatureBlock]
    proposals: list[Proposal]
    base_score: float | None
    final_score: float | None
    columns_in: list[str]
    columns_out: list[str]
    stop_reason: str
    seconds: float
    settings: dict

    @property
    def kept(self) -> list[Proposal]:
        return [p for p in self.proposals if p.kept]

    @property
    def base(self) -> Score:
        return Score(self.base_score, self.metric, self.greater_is_better)

    @property
    def final(self) -> Score:
        return Score(self.final_score, self.metric, self.greater_is_better)

    @property
    def added(self) -> list[str]:
        return [c for c in self.columns_out if c not in self.columns_in]

    @property
    def dropped(self) -> list[str]:
        return [c for c in self.columns_in if c not in self.columns_out]

    @property
    def tokens(self) -> int:
        return sum(p.prompt_tokens + p.completion_tokens for p in self.proposals)

    def table(self) -> pd.DataFrame:
        """One row per proposal: code, reason, CV score without / with, kept or not, error."""
        rows = [{"proposal": p.index, "kept": p.kept, "reason": p.reason, "score_without": p.score_without,
                 "score_with": p.score_with, "gain_pct": None if p.gain is None else round(p.gain * 100, 3),
                 "t": None if p.t is None else round(p.t, 2), "added": " ".join(p.added),
                 "dropped": " ".join(p.dropped), "error": p.error or "", "code": p.code or ""}
                for p in self.proposals]
        return pd.DataFrame(rows, columns=TABLE_COLUMNS)

    def to_markdown(self) -> str:
        """A readable report: the summary, the table (code shown below it), and the accepted code."""
        lines = [f"# CAAFE on {self.task}", "",
                 f"Base-model CV {self.metric}: {fmt_value(self.base_score)} -> {fmt_value(self.final_score)}; "
                 f"{len(self.kept)} of {len(self.proposals)} proposals kept; stopped: {self.stop_reason}.", "",
                 "| # | kept | change | reason | without | with | gain | t | error |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for p in self.proposals:
            gain = "" if p.gain is None else f"{p.gain * 100:+.2f}%"
            t = "" if p.t is None else f"{p.t:.2f}"
            cells = [str(p.index), "yes" if p.kept else "no", p.label, p.reason, fmt_value(p.score_without),
                     fmt_value(p.score_with), gain, t, p.error or ""]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        for p in self.proposals:
            if p.code:
                lines += ["", f"## Proposal {p.index}", "", "```python", p.code, "```"]
        lines += ["", "## Accepted feature code", "", "```python", self.feature_code.rstrip(), "```", ""]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CaafeResult:
        """The inverse of `to_dict` (e.g. to resume a run from its `caafe.json`)."""
        return cls(**{**data, "blocks": [FeatureBlock(**b) for b in data["blocks"]],
                      "proposals": [Proposal(**p) for p in data["proposals"]]})


def write_outputs(result: CaafeResult, folder: Path) -> dict[str, Path]:
    """Write `features.py`, `proposals.csv`, `proposals.md` and `caafe.json` into `folder`; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / name for name in ("features.py", "proposals.csv", "proposals.md", "caafe.json")}
    paths["features.py"].write_text(result.feature_code, encoding="utf-8")
    result.table().to_csv(paths["proposals.csv"], index=False)
    paths["proposals.md"].write_text(result.to_markdown(), encoding="utf-8")
    paths["caafe.json"].write_text(json.dumps(result.to_dict(), indent=2, default=str), encoding="utf-8")
    return paths


def read_result(folder: Path) -> CaafeResult:
    """The result `write_outputs` saved in `folder` (its `caafe.json`)."""
    return CaafeResult.from_dict(json.loads((Path(folder) / "caafe.json").read_text(encoding="utf-8")))


def fmt_value(value: float | None) -> str:
    """A score for people: 4 decimals, or 4 significant digits for tiny values; '-' for none."""
    if value is None:
        return "-"
    return f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.3e}"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")
