"""CAAFE in the solution prompt, and in the solution: the prompt variants of the original project and the
step that puts the accepted feature code into a generated script.

Variants (`VARIANTS`):
* "none": no CAAFE text (the baseline);
* "example": the accepted feature code shown as an example of useful features, to reuse or adapt;
* "usage": usage notes: `add_features(df)` is defined for the script; call it on train and test.
When no proposal was kept, both "example" and "usage" say so in two sentences, so the model does not
spend its attempts on features that cross-validation already turned down.

`include_feature_code` makes a script standalone: when it calls `add_features` without defining it, the
accepted function is put at its top. The runner applies it to every attempt and to the final refit, so
`best/solution.py` always carries the feature code it uses.
"""

from __future__ import annotations

import ast
import re

from tabcoder.caafe.code import FUNCTION_NAME, calls_function, defines_function
from tabcoder.caafe.messages import render
from tabcoder.caafe.result import CaafeResult, fmt_value
from tabcoder.errors import ConfigError
from tabcoder.metrics import get_metric

VARIANTS = ("none", "example", "usage")
_MAX_EXAMPLES = 4


def solution_guidance(result: CaafeResult | None, variant: str) -> str:
    """The text for the solution prompt: "" for "none", for no result, or when nothing was proposed."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown CAAFE prompt variant {variant!r}; use one of {', '.join(VARIANTS)}")
    if variant == "none" or result is None:
        return ""
    common = {"metric": get_metric(result.metric), "base": fmt_value(result.base_score),
              "final": fmt_value(result.final_score), "target": result.target, "id_column": result.id_column}
    if not result.kept:
        if not result.proposals:
            return ""
        tried = [p.label for p in result.proposals if not p.error] or [p.label for p in result.proposals]
        return render("guidance_none.j2", tried=len(result.proposals),
                      examples=", ".join(tried[:_MAX_EXAMPLES]) or "none ran", **common)
    if variant == "example":
        return render("guidance_example.j2", code=function_source(result.feature_code), **common)
    columns = [f"`{column}`: {reason}" for column, reason in _new_columns(result)]
    return render("guidance_usage.j2", columns=columns, dropped=", ".join(f"`{c}`" for c in result.dropped),
                  target_repr=repr(result.target), id_repr=repr(result.id_column), **common)


def _new_columns(result: CaafeResult) -> list[tuple[str, str]]:
    """(column, reason) for every column the accepted code adds, in order."""
    out = []
    final = set(result.columns_out)
    for proposal in result.kept:
        for column in proposal.added:
            if column in final:
                reason = re.sub(rf"^{re.escape(column)}\s*:\s*", "", proposal.reason)
                out.append((column, reason or "engineered feature"))
    return out


def function_source(module_code: str) -> str:
    """The imports and the `add_features` definition of a feature module, without its docstring."""
    tree = ast.parse(module_code)
    body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    lines = module_code.splitlines()
    start = body[0].lineno - 1 if body else 0
    return "\n".join(lines[start:]).strip()


def include_feature_code(result: CaafeResult | None, script: str) -> str:
    """`script` with the accepted `add_features` function put at its top when the script calls it without
    defining it; otherwise `script` unchanged."""
    if result is None or not result.kept or not calls_function(script) or defines_function(script):
        return script
    header = f"# --- {FUNCTION_NAME}: feature code accepted by CAAFE (cross-validated on the training rows) ---"
    block = f"{header}\n{function_source(result.feature_code)}\n# --- end of {FUNCTION_NAME} ---\n"
    lines = script.splitlines(keepends=True)
    split = _after_future_imports(script)
    return "".join(lines[:split]) + ("\n" if split else "") + block + "\n" + "".join(lines[split:])


def _after_future_imports(script: str) -> int:
    """The line index just after the script's `from __future__` imports (0 when it has none)."""
    futures = [n for n in ast.parse(script).body if isinstance(n, ast.ImportFrom) and n.module == "__future__"]
    return max((n.end_lineno or 0 for n in futures), default=0)  # ast.parse sets end_lineno
