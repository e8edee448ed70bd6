"""The benchmark report as one self-contained HTML page: tables plus inline SVG plots, nothing fetched.

Scope: three plots drawn as SVG by hand - the test score per task per system (one panel per task, as
metrics differ in scale and direction), the normalised score against wall time (log scale) per cell,
and the distribution of normalised scores per system (box and points) - and the two tables of
`report`. No JavaScript, no CDN, no external font: the page renders offline; hovering a mark shows its
`<title>`.
"""

from __future__ import annotations

import html
import math
import re
import statistics
from collections.abc import Iterable
from typing import cast

from tabcoder.bench.report import Report, ScoredCell, Summary, fmt_number

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7")
NORMALISED_RANGE = (-0.5, 1.5)  # normalised scores outside are drawn at the edge, hollow
_NUMERIC = re.compile(r"^(-|[-+]?[\d.]+(e[-+]?\d+)?%?)$")
FONT = "font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif"


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


BASELINE_COLOURS = {"dummy": "#b8b8b8", "hgb": "#555555", "flaml": "#9c755f"}


def _colours(systems: list[str]) -> dict[str, str]:
    """Greys and brown for the baselines (also `hgb@<hash>`), the palette in rank order for the rest."""
    colours = {}
    others = [name for name in systems if name.split("@")[0] not in BASELINE_COLOURS]
    for name in systems:
        base = name.split("@")[0]
        colours[name] = BASELINE_COLOURS.get(base) or PALETTE[others.index(name) % len(PALETTE)]
    return colours


def _svg(width: int, height: int, body: Iterable[str], label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="{_esc(label)}" class="plot">' + "".join(body) + "</svg>")


def _text(x: float, y: float, content, *, anchor: str = "start", size: int = 11, extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" {extra}>'
            f"{_esc(content)}</text>")


def _line(x1: float, y1: float, x2: float, y2: float, *, stroke: str = "#999", dash: str = "") -> str:
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}"{dashed}/>'


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if m * step >= raw)
    first = math.ceil(low / step) * step
    return [round(first + i * step, 10) for i in range(int((high - first) / step + 1e-9) + 1)]


def _scale(low: float, high: float, start: float, end: float):
    span = (high - low) or 1.0
    return lambda v: start + (v - low) / span * (end - start)


# =========================================================================== plot 1: score per task


def _task_panel(task: str, rows: list[Summary], colours: dict[str, str]) -> str:
    left = int(min(300, 16 + 5.6 * max(len(r.system) for r in rows)))  # room for the longest name
    width, right, bar = left + 250, 60, 16
    height = 40 + bar * len(rows) + 24
    values = [r.test for r in rows if r.test is not None]
    low = min(0.0, *values) if values else 0.0
    high = max(values) * 1.05 if values and max(values) > 0 else 1.0
    x = _scale(low, high, left, width - right)
    direction = "higher is better" if rows[0].greater_is_better else "lower is better"
    body = [_text(8, 16, f"{task}  ({rows[0].metric}, {direction})", size=12, extra='font-weight="600"')]
    for i, row in enumerate(rows):
        y = 28 + i * bar
        body.append(_text(left - 6, y + bar * 0.7, row.system, anchor="end", size=10))
        if row.test is None:
            body.append(_text(left + 4, y + bar * 0.7, "no valid submission", size=10, extra='fill="#b00"'))
            continue
        end = x(row.test)
        body.append(f'<rect class="bar" x="{min(x(0), end):.1f}" y="{y + 2}" width="{abs(end - x(0)):.1f}" '
                    f'height="{bar - 4}" fill="{colours[row.system]}"><title>{_esc(row.system)}: '
                    f"{fmt_number(row.test)} (valid {row.valid_rate:.0%})</title></rect>")
        body.append(_text(end + 4, y + bar * 0.7, fmt_number(row.test), size=10))
    axis_y = 30 + bar * len(rows)
    body.append(_line(left, axis_y, width - right, axis_y))
    body += [_text(x(t), axis_y + 14, f"{t:g}", anchor="middle", size=9) for t in _ticks(low, high, 4)]
    return _svg(width, height, body, f"test score per system for {task}")


def score_per_task(report: Report, colours: dict[str, str]) -> str:
    panels = []
    for task in report.task_names:
        rows = [s for s in report.tasks if s.task == task]
        panels.append(_task_panel(task, rows, colours))
    return '<div class="panels">' + "".join(panels) + "</div>"


# =========================================================================== plot 2: normalised vs time


def _clip(value: float) -> tuple[float, bool]:
    low, high = NORMALISED_RANGE
    return min(max(value, low), high), not low <= value <= high


def _mark(cx: float, cy: float, colour: str, clipped: bool, title: str, radius: float = 4.5) -> str:
    fill = "none" if clipped else colour
    return (f'<circle class="point" cx="{cx:.1f}" cy="{cy:.1f}" r="{radius}" fill="{fill}" stroke="{colour}" '
            f'stroke-width="1.5" fill-opacity="0.8"><title>{_esc(title)}</title></circle>')


def _normalised_axis(y, left: float, right: float) -> list[str]:
    body = []
    for t in _ticks(*NORMALISED_RANGE, 4):
        body.append(_line(left, y(t), right, y(t), stroke="#eee"))
        body.append(_text(left - 6, y(t) + 4, f"{t:g}", anchor="end", size=9))
    body.append(_line(left, y(0), right, y(0), stroke="#888", dash="4 3"))
    body.append(_line(left, y(1), right, y(1), stroke="#888", dash="4 3"))
    body.append(_text(right - 2, y(0) - 3, "dummy", anchor="end", size=9, extra='fill="#666"'))
    body.append(_text(right - 2, y(1) - 3, "hgb", anchor="end", size=9, extra='fill="#666"'))
    return body


def _point_title(cell: ScoredCell) -> str:
    return (f"{cell.system} on {cell.task} (seed {cell.row.seed}): normalised {fmt_number(cell.normalised)}, "
            f"test {fmt_number(cell.test)}, {cell.row.seconds or 0:.0f} s")


def score_vs_time(report: Report, colours: dict[str, str]) -> str:
    width, height, left, right, top, bottom = 820, 380, 60, 20, 20, 50
    cells = [c for c in report.cells if c.normalised is not None]
    seconds = [max(c.row.seconds or 0.0, 0.1) for c in cells] or [1.0]
    low, high = math.floor(math.log10(min(seconds))), math.ceil(math.log10(max(seconds)) + 1e-9)
    high = max(high, low + 1)
    x = _scale(low, high, left, width - right)
    y = _scale(*NORMALISED_RANGE, height - bottom, top)
    body = _normalised_axis(y, left, width - right)
    for power in range(low, high + 1):
        body.append(_line(x(power), top, x(power), height - bottom, stroke="#eee"))
        body.append(_text(x(power), height - bottom + 14, f"{10 ** power:g} s", anchor="middle", size=9))
    body.append(_text((left + width - right) / 2, height - 10, "wall time per cell (log scale)", anchor="middle"))
    body.append(_text(14, (top + height - bottom) / 2, "normalised test score", anchor="middle",
                      extra=f'transform="rotate(-90 14 {(top + height - bottom) / 2:.1f})"'))
    for cell, secs in zip(cells, seconds):
        value, clipped = _clip(cast(float, cell.normalised))  # the cells without one are left out above
        body.append(_mark(x(math.log10(secs)), y(value), colours[cell.system], clipped, _point_title(cell)))
    return _svg(width, height, body, "normalised score against wall time")


# =========================================================================== plot 3: distribution


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def _distribution_row(name: str, cells: list[ScoredCell], colour: str, x, y0: float, row: float) -> list[str]:
    body = [_text(x(NORMALISED_RANGE[0]) - 8, y0 + row / 2 + 4, name, anchor="end", size=10)]
    values = [c.normalised for c in cells if c.normalised is not None]
    if not values:
        return body + [_text(x(NORMALISED_RANGE[0]) + 4, y0 + row / 2 + 4, "undefined", size=10)]
    q1, median, q3 = (_clip(v)[0] for v in _quartiles(values))
    body.append(f'<rect class="box" x="{x(q1):.1f}" y="{y0 + 5:.1f}" width="{max(x(q3) - x(q1), 1):.1f}" '
                f'height="{row - 10:.1f}" fill="{colour}" fill-opacity="0.25" stroke="{colour}"/>')
    body.append(_line(x(median), y0 + 5, x(median), y0 + row - 5, stroke=colour))
    scored = [c for c in cells if c.normalised is not None]
    for i, (cell, normalised) in enumerate(zip(scored, values)):
        value, clipped = _clip(normalised)
        jitter = ((i * 7919) % 11 - 5) / 5 * (row / 2 - 7)
        body.append(_mark(x(value), y0 + row / 2 + jitter, colour, clipped, _point_title(cell), radius=3.5))
    return body


def normalised_distribution(report: Report, colours: dict[str, str]) -> str:
    row, left, right, top = 34, 230, 20, 10
    systems = report.system_names
    width, height = 820, top + row * len(systems) + 40
    x = _scale(*NORMALISED_RANGE, left, width - right)
    body = []
    for t in _ticks(*NORMALISED_RANGE, 4):
        body.append(_line(x(t), top, x(t), top + row * len(systems), stroke="#888" if t in (0, 1) else "#eee",
                          dash="4 3" if t in (0, 1) else ""))
        body.append(_text(x(t), top + row * len(systems) + 14, f"{t:g}", anchor="middle", size=9))
    body.append(_text((left + width - right) / 2, height - 8, "normalised test score (0 = dummy, 1 = hgb)",
                      anchor="middle"))
    for i, name in enumerate(systems):
        cells = [c for c in report.cells if c.system == name]
        body += _distribution_row(name, cells, colours[name], x, top + i * row, row)
    return _svg(width, height, body, "distribution of normalised scores per system")


# =========================================================================== page


def _legend(colours: dict[str, str]) -> str:
    items = "".join(f'<span class="key"><svg width="12" height="12"><rect width="12" height="12" fill="{c}"/></svg> '
                    f"{_esc(name)}</span>" for name, c in colours.items())
    return f'<div class="legend">{items}</div>'


def _html_table(markdown: str) -> str:
    """A Markdown pipe table (as `report` writes it) as an HTML table."""
    lines = [line.strip().strip("|").split(" | ") for line in markdown.splitlines() if not line.startswith("|---")]
    numeric = [all(_NUMERIC.match(row[j].strip()) for row in lines[1:]) for j in range(len(lines[0]))]
    head = "".join(f'<th class="{"num" if n else "txt"}">{_esc(c.strip())}</th>' for c, n in zip(lines[0], numeric))
    body = "".join("<tr>" + "".join(f'<td class="{"num" if n else "txt"}">{_esc(c.strip())}</td>'
                                    for c, n in zip(row, numeric)) + "</tr>" for row in lines[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = f"""
body {{ {FONT}; margin: 24px; color: #222; max-width: 1150px; }}
h1 {{ font-size: 22px; }} h2 {{ font-size: 17px; margin-top: 28px; }}
table {{ border-collapse: collapse; font-size: 12px; margin: 8px 0; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 3px 8px; }}
.num {{ text-align: right; }} .txt {{ text-align: left; }}
.panels {{ display: flex; flex-wrap: wrap; gap: 8px; }}
.plot {{ background: #fff; border: 1px solid #e4e4e4; }}
.plot text {{ {FONT}; fill: #333; }}
.legend {{ margin: 6px 0; font-size: 12px; }} .key {{ margin-right: 14px; white-space: nowrap; }}
.note {{ color: #555; font-size: 12px; }}
"""


def render_html(report: Report, *, title: str = "tabcoder benchmark", commands: list[str] | None = None) -> str:
    """The whole page as a string."""
    from tabcoder.bench.report import LIFT_NOTE, systems_table, tasks_table

    colours = _colours(report.system_names)
    notes = "".join(f'<p class="note">{_esc(n)}</p>' for n in report.notes)
    ran = "".join(f'<p class="note">command: <code>{_esc(c)}</code></p>' for c in commands or [])
    if not report.cells:
        content = "<p>No finished cells yet.</p>"
    else:
        content = (
            "<h2>All tasks</h2><p class=\"note\">normalised: 0 = dummy, 1 = HistGradientBoosting (same task and "
            f"seed); a cell without a valid submission counts 0. Rank 1 = best.</p><p class=\"note\">{_esc(LIFT_NOTE)}."
            "</p>" + _html_table(systems_table(report))
            + "<h2>Test score per task</h2>" + _legend(colours) + score_per_task(report, colours)
            + "<h2>Normalised score against wall time</h2>" + _legend(colours) + score_vs_time(report, colours)
            + "<h2>Normalised score per system</h2>" + normalised_distribution(report, colours)
            + "<h2>Per task</h2>" + _html_table(tasks_table(report)))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{_esc(title)}</h1>{ran}{notes}{content}</body></html>")
