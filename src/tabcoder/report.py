"""report.html: one self-contained page (inline CSS, inline SVG, a few lines of inline JS; no CDN, no fonts,
opens offline) that shows a run from its folder alone.

Scope: read `run.json` and `journal.jsonl`, turn them into plain view data (the solution tree laid out for
an SVG, score over time, time and tokens per attempt, each node's plan, code, diff to its parent,
feedback, reflection and score, how the final attempt was chosen, the reproduce command), and render
`templates/report.html.j2` with autoescaping. Works on an interrupted run too (no result yet).
"""

from __future__ import annotations

import difflib
import json
import re
import shlex
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from tabcoder.config import RunConfig
from tabcoder.errors import RunDirError, TabcoderError
from tabcoder.journal import Attempt, Journal
from tabcoder.strategies.common import outcome

REPORT_NAME = "report.html"
NODE_GAP_X, NODE_GAP_Y, NODE_RADIUS = 54, 74, 15
CHART_W, CHART_H, CHART_PAD, CHART_LEFT = 640, 220, 36, 64
_CODE_FENCE = re.compile(r"```.*?(?:```|$)", re.DOTALL)


class ReportError(TabcoderError):
    """The report could not be rendered from this run folder."""


@dataclass
class Node:
    """One attempt as the report shows it."""

    attempt: Attempt
    status: str  # "valid" | "failed" | "repeat" | "nocode" | "edit" | "pending"
    outcome: str
    plan: str
    diff: list[tuple[str, str]]  # (css class, line)
    x: float = 0.0
    y: float = 0.0
    children: list["Node"] = field(default_factory=list)
    shade: float = 0.0  # 0..1, the rank of a valid node's score (1 = best)


def write_report(run_dir: str | Path) -> Path:
    """Render `run_dir/report.html` from the run's files; returns its path."""
    run_dir = Path(run_dir)
    html = render_report(run_dir)
    path = run_dir / REPORT_NAME
    tmp = path.with_suffix(".html.tmp")
    try:
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc}") from exc
    return path


def render_report(run_dir: Path) -> str:
    meta, journal = _read_run(run_dir)
    try:
        template = _environment().get_template("report.html.j2")
        return template.render(**_view(run_dir, meta, journal))
    except jinja2.TemplateError as exc:
        raise ReportError(f"the report template failed on {run_dir}: {exc}") from exc


def _environment() -> jinja2.Environment:
    loader = jinja2.FunctionLoader(
        lambda name: resources.files("tabcoder").joinpath("templates", name).read_text(encoding="utf-8"))
    env = jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined, autoescape=True)
    env.filters["num"] = _number
    return env


def _read_run(run_dir: Path) -> tuple[dict, Journal]:
    meta_path, journal_path = run_dir / "run.json", run_dir / "journal.jsonl"
    if not meta_path.is_file():
        raise RunDirError(f"{run_dir} is not a run folder (no run.json): give the folder `tabcoder run` created.")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise RunDirError(f"{meta_path} is not readable JSON: {exc}") from exc
    journal = Journal.load(journal_path) if journal_path.is_file() else Journal()
    return meta, journal


def _number(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "–"
    if abs(value) >= 1000:
        return f"{value:.0f}"
    if value == 0 or abs(value) >= 1e-3:
        return f"{value:.{digits}f}"
    return f"{value:.2e}"


# =========================================================================== view data


def _view(run_dir: Path, meta: dict, journal: Journal) -> dict:
    nodes = _nodes(journal)
    roots = _layout(nodes)
    result = meta.get("result") or {}
    task = meta.get("task", {})
    config = meta.get("config", {})
    chosen = result.get("best_attempt")
    return {
        "title": f"tabcoder · {task.get('name', run_dir.name)}",
        "run_dir": str(run_dir),
        "task": task,
        "config": config,
        "model": meta.get("model", "?"),
        "isolation": meta.get("isolation") or {},
        "result": result,
        "selection": meta.get("selection"),
        "attribution": meta.get("attribution"),
        "ensemble": meta.get("ensemble"),
        "finished": "result" in meta,
        "chosen": chosen,
        "nodes": sorted(nodes.values(), key=lambda n: n.attempt.index),
        "roots": roots,
        "edges": _edges(roots),
        "tree_size": _tree_size(nodes),
        "radius": NODE_RADIUS,
        "chart": _score_chart(journal, task),
        "costs": _costs(journal),
        "reproduce": _reproduce(run_dir, result),
        "command": _command(meta),
        "resumed": meta.get("resumed", []),
        "direction": "higher" if _greater_is_better(journal) else "lower",
    }


def _status(attempt: Attempt) -> str:
    """The node's style: the attempt's status, with every way of failing drawn alike."""
    kind = attempt.status().kind
    return "failed" if kind in ("timeout", "error", "invalid", "edit") else kind


def _plan(attempt: Attempt) -> str:
    prose = _CODE_FENCE.sub("", attempt.response).strip() if attempt.code is not None else ""
    return prose if len(prose) <= 800 else prose[:799] + "…"


def _diff(parent: Attempt | None, attempt: Attempt) -> list[tuple[str, str]]:
    if parent is None or parent.code is None or attempt.code is None:
        return []
    lines = difflib.unified_diff(parent.code.splitlines(), attempt.code.splitlines(),
                                 f"attempt {parent.index}", f"attempt {attempt.index}", lineterm="", n=2)
    classes = {"+": "add", "-": "del", "@": "hunk"}
    return [(classes.get(line[:1], "ctx") if not line.startswith(("+++", "---")) else "file", line) for line in lines]


def _nodes(journal: Journal) -> dict[int, Node]:
    attempts = {a.index: a for a in journal.attempts}
    attempts.update({i: a for i, a in journal.pending.items() if i not in attempts})
    nodes = {i: Node(a, _status(a), outcome(a), _plan(a),
                     _diff(attempts.get(a.parent) if a.parent is not None else None, a))
             for i, a in attempts.items()}
    valid = sorted((n for n in nodes.values() if n.status == "valid"), key=lambda n: n.attempt.score_value)
    for rank, node in enumerate(valid):
        node.shade = 1.0 if len(valid) == 1 else rank / (len(valid) - 1)
    for index in sorted(nodes):
        parent = nodes[index].attempt.parent
        if parent in nodes:
            nodes[parent].children.append(nodes[index])
    return nodes


def _layout(nodes: dict[int, Node]) -> list[Node]:
    """Leaves on consecutive columns in depth-first order, a parent above the middle of its children."""
    roots = [n for i, n in sorted(nodes.items()) if n.attempt.parent not in nodes]
    column = 0

    def place(node: Node, depth: int) -> None:
        nonlocal column
        node.y = (depth + 1) * NODE_GAP_Y
        for child in node.children:
            place(child, depth + 1)
        if node.children:
            node.x = (node.children[0].x + node.children[-1].x) / 2
        else:
            node.x = NODE_GAP_X * (column + 0.5) + NODE_GAP_X / 2
            column += 1

    for root in roots:
        place(root, 0)
    return roots


def _edges(roots: list[Node]) -> list[tuple[float, float, float, float]]:
    """(x1, y1, x2, y2) for every parent-child link, and from the task (top) to each root."""
    edges = []
    top_x = sum(r.x for r in roots) / len(roots) if roots else 0.0
    stack = list(roots)
    for root in roots:
        edges.append((top_x, NODE_GAP_Y * 0.35, root.x, root.y))
    while stack:
        node = stack.pop()
        for child in node.children:
            edges.append((node.x, node.y, child.x, child.y))
            stack.append(child)
    return edges


def _tree_size(nodes: dict[int, Node]) -> dict[str, float]:
    width = max([n.x for n in nodes.values()] + [0.0]) + NODE_GAP_X
    height = max([n.y for n in nodes.values()] + [0.0]) + NODE_GAP_Y * 0.6
    xs = [n.x for n in nodes.values() if n.attempt.parent not in nodes]
    return {"width": max(width, 240.0), "height": max(height, 120.0),
            "top_x": sum(xs) / len(xs) if xs else 120.0, "top_y": NODE_GAP_Y * 0.35}


def _greater_is_better(journal: Journal) -> bool:
    return journal.attempts[0].greater_is_better if journal.attempts else True


def _score_chart(journal: Journal, task: dict) -> dict:
    """Valid scores against minutes since the start, and the best so far; up is better whatever the metric."""
    up = _greater_is_better(journal)
    points = [((a.finished_at if a.finished_at is not None else float(a.index)), a.score, a.index)
              for a in journal.attempts if a.valid and a.score is not None]
    if not points:
        return {"points": [], "best_path": "", "ticks": []}
    t_max = max(max(t for t, _, _ in points), 1.0)
    values = [v for _, v, _ in points]
    low, high = min(values), max(values)
    if high - low < 1e-12:
        low, high = low - 0.5 * (abs(low) or 1) * 0.01, high + 0.5 * (abs(high) or 1) * 0.01

    def x(t: float) -> float:
        return CHART_LEFT + (CHART_W - CHART_LEFT - CHART_PAD) * t / t_max

    def y(v: float) -> float:
        share = (v - low) / (high - low)
        return CHART_H - CHART_PAD - (CHART_H - 2 * CHART_PAD) * (share if up else 1 - share)

    best, path = None, []
    for t, v, _ in sorted(points):
        if best is None:
            best = v
            path.append(f"M{x(t):.1f},{y(best):.1f}")
        elif v > best if up else v < best:
            best = v
            path.append(f"H{x(t):.1f} V{y(best):.1f}")
    path.append(f"H{x(t_max):.1f}")
    return {
        "points": [{"x": x(t), "y": y(v), "index": i, "value": v, "t": t} for t, v, i in points],
        "best_path": " ".join(path),
        "ticks": [{"y": y(v), "label": _number(v)} for v in (low, high)],
        "t_max": t_max, "width": CHART_W, "height": CHART_H, "pad": CHART_PAD, "left": CHART_LEFT,
        "metric": task.get("metric", ""),
    }


def _costs(journal: Journal) -> dict:
    rows: list[dict[str, Any]] = []
    for a in journal.attempts:
        prompt = sum(c.prompt_tokens for c in a.calls)
        cached = sum(c.cached_prompt_tokens or 0 for c in a.calls)
        rows.append({"index": a.index, "kind": a.kind, "llm": a.llm_seconds, "run": a.run_seconds,
                     "tokens": a.tokens, "prompt": prompt, "cached": cached, "status": _status(a)})
    top_seconds = max([r["llm"] + r["run"] for r in rows] + [1e-9])
    top_tokens = max([r["tokens"] for r in rows] + [1])
    for r in rows:
        r["llm_pct"] = 100 * r["llm"] / top_seconds
        r["run_pct"] = 100 * r["run"] / top_seconds
        r["tokens_pct"] = 100 * r["tokens"] / top_tokens
    return {"rows": rows, "llm": sum(r["llm"] for r in rows), "run": sum(r["run"] for r in rows),
            "tokens": sum(r["tokens"] for r in rows)}


def _reproduce(run_dir: Path, result: dict) -> str | None:
    solution = result.get("solution")
    if not solution:
        return None
    return f"cd {shlex.quote(str(Path(solution).parent))} && python {Path(solution).name}"


_FLAGS = {"id_column": "--id", "test_path": "--test", "use_description": "description", "show_example": "example"}


def _command(meta: dict) -> str:
    """The `tabcoder run` command line that makes this run again (the options that differ from the defaults)."""
    config, task = meta.get("config") or {}, meta.get("task") or {}
    source = task.get("source_path") or task.get("source")
    if not source:
        return ""
    defaults = RunConfig().to_dict()
    parts = ["tabcoder", "run", str(source)]
    for name, value in config.items():
        if name == "out_dir" or value is None or value == defaults.get(name):
            continue
        flag = _FLAGS.get(name, "--" + name.replace("_", "-"))
        if isinstance(value, bool):
            parts.append(f"--{'' if value else 'no-'}{flag}")
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        parts += [flag, str(value)]
    return " ".join(shlex.quote(p) for p in parts)
