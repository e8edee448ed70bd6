"""Feature code as text: pull one block out of a model reply, find the reason it gives, and compose the
accepted blocks into one function `add_features(df) -> df` that applies to train and test alike.

A block is a few pandas statements that change `df` (add columns, drop columns, or reassign `df`);
nothing here runs it (see `execution`). The composed module is plain Python a person can read, and is
the single artefact every use of CAAFE shares: the sandbox runs it, the transformer executes it, the
solution script includes it.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass

from tabcoder.prompting import extract_code

FUNCTION_NAME = "add_features"
MODULE_HEADER = "import numpy as np\nimport pandas as pd\n"
_COMMENT = re.compile(r"^\s*#\s?(.*)$")
_LABEL = re.compile(r"^(?:feature(?: name)?|usefulness|reason|why|explanation|description)\s*:\s*", re.IGNORECASE)
_BARE_LABEL = re.compile(r"^(?:feature|usefulness)\s*:", re.IGNORECASE)  # the two comment lines we ask for
_MAX_REASON_CHARS = 300
_FENCE_LINE = re.compile(r"^[ \t]*```[\w-]*[ \t]*$", re.MULTILINE)
_ASSIGNED = re.compile(r"""\bdf\s*\[\s*["']([^"']+)["']\s*\]\s*=(?!=)""")


class BlockError(ValueError):
    """The reply holds no usable block; the message is feedback for the model, `code` what was found."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class FeatureBlock:
    """One accepted (or candidate) piece of feature code and the model's reason for it."""

    code: str
    reason: str


def parse_reply(text: str) -> FeatureBlock:
    """The feature block in a model reply. Raises BlockError (feedback for the model) when there is none,
    when it is not valid Python, or when it would end the function early."""
    code = extract_code(text)
    if code is None and re.search(r"\bdf\s*(\[|\.|=)", text):
        code = _FENCE_LINE.sub("", text).strip()  # bare code, or a fence only closed
    if not code:
        raise BlockError("Your answer contained no code. Answer with one ```python code block that changes `df`.")
    code = _comment_labels(_drop_data_loading(code))
    try:
        compile(code, "<feature code>", "exec")  # also catches a `return` that would end add_features early
        tree = ast.parse(code)
    except SyntaxError as exc:
        raise BlockError(f"The code is not valid Python: {exc.msg} (line {exc.lineno}).", code) from None
    code = _call_defined_function(code, tree)
    if "df" not in {n.id for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name)}:
        raise BlockError("The code never uses `df`. Change the DataFrame `df`, e.g. df['new'] = df['a'] / df['b'].",
                         code)
    return FeatureBlock(code=code.strip(), reason=reason_of(code, text))


def _drop_data_loading(code: str) -> str:
    """Remove lines that (re)load or save data: `df` is given, and files are neither there nor needed."""
    kept = [line for line in code.splitlines()
            if not re.match(r"^\s*df\s*=\s*pd\.read_\w+\(", line) and not re.match(r"^\s*df\.to_\w+\(", line)]
    return "\n".join(kept)


def _comment_labels(code: str) -> str:
    """Turn bare 'Feature: ...' / 'Usefulness: ...' lines (a comment without its '#') into comments."""
    return "\n".join(f"# {line.strip()}" if _BARE_LABEL.match(line.strip()) else line for line in code.splitlines())


def assigned_columns(code: str) -> list[str]:
    """The column names the code assigns with df["name"] = ..., in order (for naming failed proposals)."""
    return list(dict.fromkeys(_ASSIGNED.findall(code)))


def _call_defined_function(code: str, tree: ast.Module) -> str:
    """A block that only defines functions (e.g. `def add_features(df): ...`) is applied to `df`."""
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    others = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.Import, ast.ImportFrom, ast.Expr))]
    if defs and not others and defs[-1].args.args:
        return f"{code.rstrip()}\ndf = {defs[-1].name}(df)"
    return code


def reason_of(code: str, reply: str) -> str:
    """The model's reason: the comment lines at the top of the block, else the prose before the code."""
    comments = []
    for line in code.splitlines():
        match = _COMMENT.match(line)
        if match:
            comments.append(_LABEL.sub("", match.group(1).strip()))
        elif line.strip() and not line.lstrip().startswith(("import ", "from ")):
            break
    reason = "; ".join(c.rstrip(".;") for c in comments if c)
    if not reason:
        prose = reply.split("```", 1)[0]
        reason = " ".join(prose.split())
    return reason[:_MAX_REASON_CHARS]


def compose(blocks: list[FeatureBlock], *, title: str = "") -> str:
    """A module defining `add_features(df)`: the blocks in order, on a copy of `df`, each with its reason."""
    lines = [f'"""{title}"""' if title else "", MODULE_HEADER, "",
             f"def {FUNCTION_NAME}(df: pd.DataFrame) -> pd.DataFrame:",
             '    """Add (and drop) feature columns. `df` holds the feature columns only: no target, no id."""',
             "    df = df.copy()"]
    for number, block in enumerate(blocks, 1):
        commented = block.code.lstrip().startswith("#")
        reason = " ".join(block.reason.split())
        lines.append(f"    # ({number}) {reason}" if reason and not commented else f"    # ({number})")
        lines.append(textwrap.indent(block.code, "    ", lambda line: True).rstrip())
    lines.append("    return df")
    return "\n".join(lines).lstrip("\n") + "\n"


def defines_function(code: str, name: str = FUNCTION_NAME) -> bool:
    """Whether `code` defines a top-level function `name` (False for code that does not parse)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    return any(isinstance(n, ast.FunctionDef) and n.name == name for n in tree.body)


def calls_function(code: str, name: str = FUNCTION_NAME) -> bool:
    """Whether `code` calls `name(...)` anywhere (False for code that does not parse)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name for n in ast.walk(tree))
