"""Edits: the script a model's reply means when the reply changes the current script instead of rewriting it.

A reply takes one of three forms (`EDIT_FORMATS`, what a prompt can ask for):

- "search-replace": SEARCH/REPLACE blocks, each replacing lines copied from the script;
- "functions": bare top-level definitions (functions, classes, imports and UPPER_CASE constants) that replace
  those of the same name in the script or join it, the rest of the script kept byte for byte;
- "whole": a complete script, which replaces the old one.

An edit that does not apply carries an `error`: feedback shown to the model verbatim, saying which part did
not apply and what to send instead. `apply_reply` never raises on any reply text.
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass

from tabcoder.config import EDIT_FORMATS
from tabcoder.prompting import extract_code

__all__ = ["EDIT_FORMATS", "Edit", "apply_reply", "as_edit", "same_program"]

_SEARCH = re.compile(r"^\s*<{5,9}\s*SEARCH\s*$", re.IGNORECASE)
_DIVIDER = re.compile(r"^\s*={5,9}\s*$")
_REPLACE = re.compile(r"^\s*>{5,9}\s*REPLACE\s*$", re.IGNORECASE)
_FENCE = re.compile(r"^\s*```[\w+-]*\s*$")
#: A constant's name: UPPER_CASE, at least two characters, so that the usual `X = ...` is code.
_CONSTANT = re.compile(r"_*[A-Z][A-Z0-9_]+")
_WHOLE = "send the whole script in one ```python block"
_SHOWN = 60  # characters of a script or SEARCH line quoted in feedback


@dataclass(frozen=True)
class Edit:
    """What a reply did to the script: the resulting script (`code`), or why there is none (`error`)."""

    code: str | None  # the resulting full script; None when the reply has no code or the edit did not apply
    form: str  # "search-replace" | "functions" | "whole" | "none" (no code in the reply)
    error: str | None = None  # why the edit did not apply, for the model; None when it applied or had no code
    blocks: int = 0  # SEARCH/REPLACE blocks applied, or functions, classes and constants replaced or added

    @property
    def applied(self) -> bool:
        return self.code is not None and self.error is None


class _EditError(Exception):
    """An edit that does not apply; the message is the model's feedback."""


def apply_reply(reply: str, base: str | None) -> Edit:
    """The script a reply means, given the script it edits (`base`, None for a first draft)."""
    reply = reply.replace("\r\n", "\n")
    if any(_SEARCH.match(line) for line in reply.split("\n")):
        if base is None:
            return Edit(None, "search-replace", f"There is no script to edit yet: {_WHOLE}.")
        try:
            return _apply_blocks(_parse_blocks(reply), base)
        except _EditError as error:
            return Edit(None, "search-replace", str(error))
    code = extract_code(reply)
    if code is None:
        return Edit(None, "none")
    if base is None or _is_complete(code):
        return Edit(code, "whole")
    try:
        return _apply_functions(code, base)
    except _EditError as error:
        return Edit(None, "functions", str(error))


# -- SEARCH/REPLACE blocks ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Block:
    search: list[str]
    replace: list[str]


def _parse_blocks(reply: str) -> list[_Block]:
    """The blocks of a reply, in order; an unterminated block is an error."""
    blocks: list[_Block] = []
    part: list[str] | None = None  # the lines being collected: SEARCH, then replacement
    search: list[str] = []
    replace: list[str] = []
    for line in reply.split("\n"):
        if part is search and (_SEARCH.match(line) or _REPLACE.match(line)):
            raise _EditError(_unterminated(len(blocks) + 1, "=======", "its SEARCH lines"))
        if part is replace and _SEARCH.match(line):
            raise _EditError(_unterminated(len(blocks) + 1, ">>>>>>> REPLACE", "its new lines"))
        if _SEARCH.match(line):
            search, replace = [], []
            part = search
        elif part is search and _DIVIDER.match(line):
            part = replace
        elif part is replace and _REPLACE.match(line):
            blocks.append(_Block(_unfence(search), _unfence(replace)))
            part = None
        elif part is not None:
            part.append(line)
    if part is search:
        raise _EditError(_unterminated(len(blocks) + 1, "=======", "its SEARCH lines"))
    if part is replace:
        raise _EditError(_unterminated(len(blocks) + 1, ">>>>>>> REPLACE", "its new lines"))
    return blocks


def _unterminated(number: int, marker: str, after: str) -> str:
    return (f'SEARCH/REPLACE block {number} is unterminated: it has no "{marker}" line after {after}. Write each '
            "block as <<<<<<< SEARCH, the lines to replace, =======, the new lines, >>>>>>> REPLACE.")


def _unfence(lines: list[str]) -> list[str]:
    """The lines without a ``` fence line at either end (a fence inside a block is not script text)."""
    if lines and _FENCE.match(lines[0]):
        lines = lines[1:]
    if lines and _FENCE.match(lines[-1]):
        lines = lines[:-1]
    return lines


def _apply_blocks(blocks: list[_Block], base: str) -> Edit:
    text = base
    for number, block in enumerate(blocks, 1):
        if not any(line.strip() for line in block.search):
            raise _EditError(f"SEARCH/REPLACE block {number} has an empty SEARCH part: copy the lines to change "
                             f"from the script above between <<<<<<< SEARCH and =======, or {_WHOLE}.")
        changed = _replace(text, block)
        if changed is None:
            raise _EditError(_not_found(number, block.search, text))
        text = changed
    return Edit(text, "search-replace", blocks=len(blocks))


def _replace(text: str, block: _Block) -> str | None:
    """`text` with the block's SEARCH lines replaced, or None when they are not in it.

    Tried in turn, the first occurrence winning: the lines exactly; ignoring trailing whitespace; ignoring a
    uniform difference of indentation (the replacement re-indented by it). Then the same without blank lines
    at either end of the block.
    """
    lines = _lines(text)
    bare = [_content(line) for line in lines]
    tries = [(block.search, block.replace)]
    trimmed = (_trim(block.search), _trim(block.replace))
    if trimmed[0] != block.search:
        tries.append(trimmed)
    for search, replace in tries:
        found = _find(bare, search)
        if found is None:
            continue
        start, shift = found
        end = start + len(search)
        new = [_shift(line, *shift) for line in replace] if shift else replace
        eol = "\r\n" if lines[start].endswith("\r\n") else "\n"
        tail = lines[end - 1][len(bare[end - 1]):]
        replaced = [line + eol for line in new]
        if replaced:
            replaced[-1] = new[-1] + tail
        return "".join(lines[:start] + replaced + lines[end:])
    return None


def _find(bare: list[str], search: list[str]) -> tuple[int, tuple[int, str] | None] | None:
    """Where `search` first matches `bare` at the loosest level needed, and the re-indentation it needs
    (the search's common indentation width, the script's common indentation) when that is by indentation."""
    n = len(search)
    starts = range(len(bare) - n + 1)
    for i in starts:
        if bare[i:i + n] == search:
            return i, None
    rstripped = [line.rstrip() for line in bare]
    wanted = [line.rstrip() for line in search]
    for i in starts:
        if rstripped[i:i + n] == wanted:
            return i, None
    stripped = [line.strip() for line in bare]
    wanted = [line.strip() for line in search]
    for i in starts:
        if stripped[i:i + n] == wanted:
            shift = _indentation(bare[i:i + n], search)
            if shift is not None:
                return i, shift
    return None


def _indentation(window: list[str], search: list[str]) -> tuple[int, str] | None:
    """(the search's common indentation width, the window's common indentation) when the two differ only by
    that common indentation, else None."""
    pairs = [(w, s) for w, s in zip(window, search) if s.strip()]
    low_s = min(_indent(s) for _, s in pairs)
    low_w = min(_indent(w) for w, _ in pairs)
    if any(w[low_w:_indent(w)] != s[low_s:_indent(s)] for w, s in pairs):
        return None
    prefix = next(w for w, _ in pairs if _indent(w) == low_w)[:low_w]
    return low_s, prefix


def _shift(line: str, width: int, prefix: str) -> str:
    """A replacement line re-indented: its first `width` characters of indentation become `prefix`."""
    if not line.strip():
        return line
    indent = _indent(line)
    if indent >= width:
        return prefix + line[width:]
    delta = len(prefix) - width
    return prefix[:delta] + line if delta >= 0 else line[min(indent, -delta):]


def _not_found(number: int, search: list[str], text: str) -> str:
    """Feedback for a block whose SEARCH lines are not in `text`: the line that is not, and the closest one."""
    script = [line.strip() for line in _bare(text)]
    present = set(script)
    wanted = [line.strip() for line in search if line.strip()]
    first = _quote(wanted[0])
    where = "the script"
    if number > 1:
        where += " (as block 1 left it)" if number == 2 else f" (as blocks 1-{number - 1} left it)"
    missing = next((line for line in wanted if line not in present), None)
    advice = f"Copy the SEARCH lines exactly from the script above, or {_WHOLE}."
    if missing is None:
        at = script.index(wanted[0]) + 1
        return (f"SEARCH/REPLACE block {number} did not apply: its SEARCH lines (starting {first}) are all in "
                f"{where} but not together in this order and indentation (the first is line {at}). {advice}")
    close = difflib.get_close_matches(missing[:200], [line[:200] for line in script if line], n=1, cutoff=0.5)
    closest = ""
    if close:
        at = next(i for i, line in enumerate(script) if line[:200] == close[0]) + 1
        closest = f"; the closest is line {at}: {_quote(script[at - 1])}"
    if missing == wanted[0]:
        lead = f"its SEARCH line {first}"
    else:
        lead = f"it starts {first}, but its SEARCH line {_quote(missing)}"
    return f"SEARCH/REPLACE block {number} did not apply: {lead} is not in {where}{closest}. {advice}"


def _quote(line: str) -> str:
    line = line.strip()
    return f'"{line if len(line) <= _SHOWN else line[:_SHOWN - 3] + "..."}"'


def _trim(lines: list[str]) -> list[str]:
    """The lines without blank lines at either end."""
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


# -- lines of a script ------------------------------------------------------------------------------------

def _lines(text: str) -> list[str]:
    """The lines of `text`, each with its line ending, split only at "\\n" as Python counts lines."""
    parts = text.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _content(line: str) -> str:
    """A line without its line ending."""
    return line.removesuffix("\n").removesuffix("\r")


def _bare(text: str) -> list[str]:
    return [_content(line) for line in _lines(text)]


# -- whole scripts and definitions ------------------------------------------------------------------------

def _parse(code: str) -> ast.Module:
    """`code`'s syntax tree; a SyntaxError (message, line) when there is none, for whatever reason."""
    try:
        return ast.parse(code)
    except SyntaxError:
        raise
    except (ValueError, RecursionError, MemoryError) as error:
        raise SyntaxError(f"too complex to parse ({type(error).__name__})") from None


def _constant_names(node: ast.stmt) -> list[str]:
    """The names a top-level assignment to UPPER_CASE names binds, else []."""
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign):
        targets = [node.target]
    else:
        return []
    names = [t.id for t in targets if isinstance(t, ast.Name) and _CONSTANT.fullmatch(t.id)]
    return names if len(names) == len(targets) else []


def _is_definition(node: ast.stmt) -> bool:
    """An import, a definition, a docstring (or `...`, `pass`), or an assignment to an UPPER_CASE name."""
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                         ast.Pass)):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return True
    return bool(_constant_names(node))


def _is_complete(code: str) -> bool:
    """A whole script rather than definitions: it runs something at top level (or does not parse and writes
    a CSV, its syntax error left for the sandbox to report)."""
    try:
        tree = _parse(code)
    except SyntaxError:
        return "to_csv" in code
    return not all(_is_definition(node) for node in tree.body)


def _span(node: ast.stmt) -> tuple[int, int]:
    """The statement's lines as 0-based [start, end), decorators included."""
    decorators = getattr(node, "decorator_list", [])
    start = min([node.lineno] + [d.lineno for d in decorators])
    return start - 1, node.end_lineno or node.lineno


def _import_keys(node: ast.Import | ast.ImportFrom) -> set[tuple[str, int, str, str | None]]:
    """What an import binds, one key per imported name: (module, level, name, alias)."""
    if isinstance(node, ast.ImportFrom):
        return {(node.module or "", node.level, a.name, a.asname) for a in node.names}
    return {("", 0, a.name, a.asname) for a in node.names}


def _apply_functions(code: str, base: str) -> Edit:
    """Put the reply's top-level definitions, imports and UPPER_CASE constants into `base`."""
    try:
        tree = _parse(code)
    except SyntaxError as error:
        shown = f" ({_quote(error.text)})" if error.text and error.text.strip() else ""
        raise _EditError(f"The code in the reply does not parse: {error.msg} at line {error.lineno}{shown}. "
                         f"Fix it, send SEARCH/REPLACE blocks, or {_WHOLE}.") from None
    try:
        base_tree = _parse(base)
    except SyntaxError:
        raise _EditError("The current script does not parse, so the definitions in the reply cannot be placed "
                         f"in it: send SEARCH/REPLACE blocks, or {_WHOLE}.") from None

    reply_lines = _lines(code)

    def source(node: ast.stmt) -> str:
        start, end = _span(node)
        text = "".join(reply_lines[start:end])
        return text if text.endswith("\n") else text + "\n"

    defined: dict[str, tuple[int, int]] = {}
    constants: dict[str, tuple[int, int]] = {}
    imported: set[tuple[str, int, str, str | None]] = set()
    last_import = last_def = None
    docstring_end = 0
    for index, node in enumerate(base_tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined[node.name] = _span(node)
            last_def = _span(node)[1]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            imported |= _import_keys(node)
            last_import = _span(node)[1]
        elif index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            docstring_end = _span(node)[1]
        for name in _constant_names(node):
            constants[name] = _span(node)

    definitions: dict[str, str] = {}
    values: dict[str, str] = {}
    new_imports: list[str] = []
    future: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            definitions.pop(node.name, None)
            definitions[node.name] = source(node)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            keys = _import_keys(node)
            if not keys <= imported:
                is_future = isinstance(node, ast.ImportFrom) and node.module == "__future__"
                (future if is_future else new_imports).append(source(node))
                imported |= keys
        elif names := _constant_names(node):
            values.pop(names[0], None)
            values[names[0]] = source(node)
    if not (definitions or values or new_imports or future):
        raise _EditError("The code in the reply has no top-level function, class, import or UPPER_CASE constant "
                         f"to put into the script, and it is not a whole script: send SEARCH/REPLACE blocks, or "
                         f"{_WHOLE}.")

    replacements: list[tuple[int, int, str]] = []
    added_values: list[str] = []
    added_definitions: list[str] = []
    for name, text in values.items():
        if name in constants:
            replacements.append((*constants[name], text))
        else:
            added_values.append(text)
    for name, text in definitions.items():
        if name in defined:
            replacements.append((*defined[name], text))
        else:
            added_definitions.append(text)

    after_imports = last_import if last_import is not None else docstring_end
    inserts: dict[int, str] = {}
    if future:
        inserts[docstring_end] = "".join(future)
    head = "".join(new_imports)
    if added_values:
        head += ("\n" if head or after_imports else "") + "".join(added_values)
    if added_definitions and last_def is None:
        head += "".join(("\n\n" if head or after_imports else "") + text for text in added_definitions[:1])
        head += "".join("\n\n" + text for text in added_definitions[1:])
    elif added_definitions and last_def is not None:
        inserts[last_def] = inserts.get(last_def, "") + "".join("\n\n" + text for text in added_definitions)
    if head:
        if last_import is None and (added_values or added_definitions):
            head += "\n\n" if added_definitions else "\n"
        inserts[after_imports] = inserts.get(after_imports, "") + head

    lines = _lines(base)
    if lines and not lines[-1].endswith("\n") and len(lines) in inserts:
        lines[-1] += "\n"
    # Bottom up, so that earlier line numbers stay valid; at one line a replacement goes before an insertion.
    changes = [(start, 1, end, text) for start, end, text in replacements]
    changes += [(at, 0, at, text) for at, text in inserts.items()]
    for start, _, end, text in sorted(changes, key=lambda c: (c[0], c[1]), reverse=True):
        lines[start:end] = [text]
    return Edit("".join(lines), "functions", blocks=len(values) + len(definitions))


# -- a whole script as the edit of its parent -------------------------------------------------------------

def as_edit(base: str, code: str, edit_format: str) -> str | None:
    """A reply in `edit_format` ("functions" or "search-replace") that turns `base` into exactly `code`: the
    top-level definitions, imports and UPPER_CASE constants that changed, or SEARCH/REPLACE blocks of the
    changed lines (also when the functions cannot say the change, e.g. outside any definition). None when
    there is no change, or the edit would not give `code` back (every reply is checked by applying it)."""
    if base == code:
        return None
    reply = _as_functions(base, code) if edit_format == "functions" else None
    if reply is None and edit_format in ("functions", "search-replace"):
        reply = _as_blocks(base, code)
    if reply is None:
        return None
    edit = apply_reply(reply, base)
    return reply if edit.code is not None and edit.code.strip() == code.strip() else None


def _as_functions(base: str, code: str) -> str | None:
    try:
        base_tree, tree = _parse(base), _parse(code)
    except SyntaxError:
        return None
    base_lines, lines = _lines(base), _lines(code)

    def text(node: ast.stmt, source: list[str]) -> str:
        start, end = _span(node)
        return "".join(source[start:end])

    old: dict[str, str] = {}
    for node in base_tree.body:
        for name in _node_names(node):
            old[name] = text(node, base_lines)
    changed = []
    for node in tree.body:
        names = _node_names(node)
        if names and any(old.get(name) != text(node, lines) for name in names):
            changed.append(text(node, lines).rstrip("\n"))
    if not changed:
        return None
    return "```python\n" + "\n\n\n".join(changed) + "\n```"


def _node_names(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [repr(sorted(_import_keys(node), key=repr))]
    return _constant_names(node)


def _as_blocks(base: str, code: str, context: int = 2) -> str | None:
    old, new = base.split("\n"), code.split("\n")
    blocks = []
    for group in difflib.SequenceMatcher(None, old, new, autojunk=False).get_grouped_opcodes(context):
        first, last = group[0], group[-1]
        search, replace = old[first[1]:last[2]], new[first[3]:last[4]]
        if not any(line.strip() for line in search):
            return None  # an insertion with no line to anchor it
        blocks.append("<<<<<<< SEARCH\n" + "\n".join(search) + "\n=======\n" + "\n".join(replace)
                      + "\n>>>>>>> REPLACE")
    return "\n".join(blocks) if blocks else None


def same_program(one: str, other: str) -> bool:
    """Whether two scripts differ in comments, docstrings and layout only (their syntax trees, docstrings
    removed, are equal); False when either does not parse."""
    try:
        trees = [_parse(one), _parse(other)]
    except SyntaxError:
        return False
    for tree in trees:
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.dump(trees[0]) == ast.dump(trees[1])
