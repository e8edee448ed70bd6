"""Fine-tuning examples: the canonical chat format, and conversion from and to alpaca and ShareGPT files.

An *example* is one JSON object per line of a `.jsonl` file:
`{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...], "meta": {...}}`. The last
message is the assistant completion that training learns; the earlier ones are context (an optional
system prompt first, then user and assistant turns, starting with a user turn). `meta` is free-form
provenance.

Importers read local JSON (a list of records) or JSONL files in alpaca format (`instruction`, `input`,
`output`, optional `system` and `history`) or ShareGPT format (`conversations` of `{"from", "value"}`
turns with an optional top-level `system`, or OpenAI-style `messages` of `{"role", "content"}`). As in
LLaMA-Factory, an alpaca user turn is `instruction` and `input` joined by a newline (either may be empty).
Tool and function-call turns are not supported. `write_llamafactory` writes ShareGPT files plus the
`dataset_info.json` that LLaMA-Factory reads.

Exporters write the same record shapes back; alpaca -> example -> alpaca and ShareGPT -> example ->
ShareGPT give the records read, for records in the shape the exporters write (alpaca: `input` present,
`system` and `history` only when non-empty; ShareGPT: the system prompt as the top-level `system`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tabcoder.errors import ConfigError

ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
TOOL_ROLES = {"function_call", "function", "observation", "tool", "tool_call", "tool_response"}
LLAMAFACTORY_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}


@dataclass
class Example:
    """One chat to learn from: `messages` end with the assistant turn that training learns."""

    messages: list[dict[str, str]]
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str = "example") -> None:
        """Raise ConfigError, naming `where`, unless the example is one that training can learn from."""
        if not isinstance(self.messages, list) or not self.messages:
            raise ConfigError(f"{where}: 'messages' must be a non-empty list of {{role, content}} objects")
        for number, message in enumerate(self.messages, 1):
            if not isinstance(message, dict) or set(message) != {"role", "content"}:
                keys = sorted(message) if isinstance(message, dict) else type(message).__name__
                raise ConfigError(f"{where}: message {number} must be an object with exactly 'role' and "
                                  f"'content' (found {keys})")
            if message["role"] not in ROLES:
                raise ConfigError(f"{where}: message {number} has role {message['role']!r}; "
                                  f"use one of {', '.join(ROLES)}")
            if not isinstance(message["content"], str):
                raise ConfigError(f"{where}: message {number} content must be a string, "
                                  f"not {type(message['content']).__name__}")
            if message["role"] == "system" and number != 1:
                raise ConfigError(f"{where}: message {number} is a system message; only the first may be one")
        roles = [m["role"] for m in self.messages if m["role"] != "system"]
        if roles[-1:] != ["assistant"]:
            raise ConfigError(f"{where}: the last message must be the assistant's (the completion to learn), "
                              f"not {self.messages[-1]['role']!r}; add the response or drop the record")
        if roles[0] != "user":
            raise ConfigError(f"{where}: the conversation must start with a user message (after an optional "
                              f"system message)")
        if not isinstance(self.meta, dict):
            raise ConfigError(f"{where}: 'meta' must be an object, not {type(self.meta).__name__}")

    @property
    def system(self) -> str | None:
        return self.messages[0]["content"] if self.messages[0]["role"] == "system" else None

    @property
    def turns(self) -> list[dict[str, str]]:
        """The messages without the system prompt."""
        return self.messages[1:] if self.system is not None else self.messages

    def to_dict(self) -> dict:
        return {"messages": [dict(m) for m in self.messages], "meta": dict(self.meta)}

    @classmethod
    def from_dict(cls, data: dict, where: str = "example") -> "Example":
        if not isinstance(data, dict) or "messages" not in data:
            found = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ConfigError(f"{where}: expected an object with 'messages' (and optional 'meta'), found {found}")
        extra = set(data) - {"messages", "meta"}
        if extra:
            raise ConfigError(f"{where}: unexpected keys {sorted(extra)}; an example has only 'messages' and 'meta'")
        return cls.checked(data["messages"], data.get("meta", {}), where)

    @classmethod
    def checked(cls, messages: list[dict[str, str]], meta: dict, where: str) -> "Example":
        """An example whose validation errors name `where` (a file and line)."""
        example = cls.__new__(cls)
        example.messages, example.meta = messages, meta
        example.validate(where)
        return example


def read_examples(path: str | Path) -> list[Example]:
    """Read a canonical `.jsonl` file of examples (blank lines are skipped)."""
    path = Path(path)
    return [Example.from_dict(record, where) for record, where, _ in _read_records(path, jsonl=True)]


def write_examples(path: str | Path, examples: list[Example]) -> None:
    """Write examples as canonical JSONL, one per line."""
    with open(path, "w", encoding="utf-8") as handle:
        for example in examples:
            handle.write(json.dumps(example.to_dict(), ensure_ascii=False) + "\n")


def _read_records(path: Path, jsonl: bool | None = None) -> list[tuple[Any, str, int]]:
    """(record, where, number) triples of a JSONL file (by line) or a JSON file holding a list (by record)."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc})") from None
    if jsonl is None:
        jsonl = path.suffix.lower() == ".jsonl"
    if jsonl:
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append((json.loads(line), f"{path} line {number}", number))
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{path} line {number}: invalid JSON ({exc.msg} at column {exc.colno}); "
                                      f"each line must be one JSON object") from None
        return records
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
                          f"a .json file must hold a list of records (use .jsonl for one record per line)") from None
    if not isinstance(data, list):
        raise ConfigError(f"{path}: a .json file must hold a list of records, not a {type(data).__name__}")
    return [(record, f"{path} record {number}", number) for number, record in enumerate(data, 1)]


def _record_format(record: object, where: str) -> str:
    if isinstance(record, dict):
        if "instruction" in record:
            return "alpaca"
        if "conversations" in record:
            return "sharegpt"
        if "messages" in record:
            return "openai"
    found = sorted(record) if isinstance(record, dict) else type(record).__name__
    raise ConfigError(f"{where}: unknown record shape (found keys {found}); expected alpaca "
                      f"('instruction', 'input', 'output', optional 'system', 'history'), ShareGPT "
                      f"('conversations', optional 'system') or OpenAI-style ('messages')")


def detect_format(path: str | Path) -> str:
    """'alpaca', 'sharegpt' (`conversations`) or 'openai' (`messages`), from the file's first record."""
    path = Path(path)
    records = _read_records(path)
    if not records:
        raise ConfigError(f"{path}: no records")
    return _record_format(*records[0][:2])


def import_file(path: str | Path, fmt: str = "auto") -> list[Example]:
    """Examples of an alpaca or ShareGPT file; fmt 'sharegpt' also accepts OpenAI-style `messages`."""
    path = Path(path)
    if fmt not in ("auto", "alpaca", "sharegpt", "openai"):
        raise ConfigError(f"unknown format {fmt!r}; use auto, alpaca or sharegpt")
    examples = []
    for record, where, number in _read_records(path):
        found = _record_format(record, where)
        if fmt == "alpaca" and found != "alpaca" or fmt in ("sharegpt", "openai") and found == "alpaca":
            raise ConfigError(f"{where}: record is in {found} format (keys {sorted(record)}), not {fmt}; "
                              f"use --format auto or the right format")
        example = from_alpaca(record, where) if found == "alpaca" else from_sharegpt(record, where)
        example.meta.update(source=str(path), record=number)
        examples.append(example)
    if not examples:
        raise ConfigError(f"{path}: no records")
    return examples


def _string(record: dict, key: str, where: str, default: str | None = None) -> str:
    value = record.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key!r} must be a string" + ("" if key in record else " (missing)"))
    return value


def from_alpaca(record: dict, where: str = "record") -> Example:
    """An alpaca record as an example: history pairs become earlier user/assistant turns."""
    instruction = _string(record, "instruction", where)
    query = _string(record, "input", where, "")
    if record.get("output") is None:
        raise ConfigError(f"{where}: no 'output' (the response to learn); add it or drop the record")
    output = _string(record, "output", where)
    messages = []
    system = record.get("system")
    if system:
        messages.append({"role": "system", "content": _string(record, "system", where)})
    history = record.get("history") or []
    if not isinstance(history, list):
        raise ConfigError(f"{where}: 'history' must be a list of [instruction, response] pairs")
    for number, pair in enumerate(history, 1):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
            raise ConfigError(f"{where}: history item {number} must be a pair [instruction, response] of strings")
        messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    messages += [{"role": "user", "content": "\n".join(part for part in (instruction, query) if part)},
                 {"role": "assistant", "content": output}]
    meta: dict[str, Any] = {"format": "alpaca"}
    if query:
        meta["alpaca_split"] = [len(instruction), len(query)]
    return Example.checked(messages, meta, where)


def from_sharegpt(record: dict, where: str = "record") -> Example:
    """A ShareGPT (`conversations` of from/value) or OpenAI-style (`messages` of role/content) record."""
    openai = "conversations" not in record
    key, role_key, content_key = ("messages", "role", "content") if openai else ("conversations", "from", "value")
    turns = record.get(key)
    if not isinstance(turns, list) or not turns:
        raise ConfigError(f"{where}: {key!r} must be a non-empty list of {{{role_key}, {content_key}}} objects")
    messages = []
    if record.get("system"):
        messages.append({"role": "system", "content": _string(record, "system", where)})
    for number, turn in enumerate(turns, 1):
        if not isinstance(turn, dict) or role_key not in turn:
            found = sorted(turn) if isinstance(turn, dict) else type(turn).__name__
            raise ConfigError(f"{where}: turn {number} must be an object with {role_key!r} and {content_key!r} "
                              f"(found {found})")
        role = turn[role_key]
        if role in TOOL_ROLES or turn.get("tool_calls") or turn.get("function_call"):
            raise ConfigError(f"{where}: turn {number} is a tool/function turn ({role!r}); tool use is not "
                              f"supported: drop the record or flatten the turn into text")
        if role not in SHAREGPT_ROLES or openai and role in ("human", "gpt"):
            accepted = ROLES if openai else list(SHAREGPT_ROLES)
            raise ConfigError(f"{where}: turn {number} has unknown {role_key} {role!r}; expected one of "
                              f"{', '.join(accepted)}")
        content = turn.get(content_key)
        if not isinstance(content, str):
            raise ConfigError(f"{where}: turn {number} {content_key!r} must be a string")
        messages.append({"role": SHAREGPT_ROLES[role], "content": content})
    if messages[-1]["role"] != "assistant":
        raise ConfigError(f"{where}: the conversation ends with a {messages[-1]['role']} turn; it must end with "
                          f"the assistant's response (the completion to learn): add it or drop the record")
    return Example.checked(messages, {"format": "openai" if openai else "sharegpt"}, where)


def to_alpaca(example: Example) -> dict:
    """The example as an alpaca record; its turns must alternate user/assistant."""
    turns = example.turns
    roles = [m["role"] for m in turns]
    if roles != ["user", "assistant"] * (len(turns) // 2):
        raise ConfigError(f"an example ({example.meta}) cannot be written as alpaca: its turns must alternate "
                          f"user/assistant (found {roles}); use ShareGPT instead")
    content = turns[-2]["content"]
    instruction, query = content, ""
    split = example.meta.get("alpaca_split")
    if split and split[1] and len(content) == split[0] + split[1] + (1 if split[0] else 0):
        instruction, query = content[:split[0]], content[len(content) - split[1]:]
    record: dict[str, Any] = {"instruction": instruction, "input": query, "output": turns[-1]["content"]}
    if example.system:
        record["system"] = example.system
    if len(turns) > 2:
        record["history"] = [[turns[i]["content"], turns[i + 1]["content"]] for i in range(0, len(turns) - 2, 2)]
    return record


def to_sharegpt(example: Example) -> dict:
    """The example as a ShareGPT record (human/gpt turns; the system prompt as top-level `system`)."""
    names = {"user": "human", "assistant": "gpt"}
    record: dict[str, Any] = {"conversations": [{"from": names[m["role"]], "value": m["content"]}
                                                for m in example.turns]}
    if example.system:
        record["system"] = example.system
    return record


def to_openai(example: Example) -> dict:
    """The example as an OpenAI-style record (`messages` of role/content)."""
    return {"messages": [dict(m) for m in example.messages]}


def _llamafactory_record(example: Example) -> dict:
    """ShareGPT for LLaMA-Factory, which needs strictly alternating human/gpt turns: consecutive turns of
    one role (a prompt sent as two user messages) are joined with a blank line."""
    merged: list[dict[str, str]] = []
    for message in example.turns:
        if merged and merged[-1]["role"] == message["role"]:
            merged[-1] = {"role": message["role"], "content": merged[-1]["content"] + "\n\n" + message["content"]}
        else:
            merged.append(message)
    names = {"user": "human", "assistant": "gpt"}
    return {"conversations": [{"from": names[m["role"]], "value": m["content"]} for m in merged],
            "system": example.system or ""}


def llamafactory_entry(file_name: str) -> dict:
    """The `dataset_info.json` entry for a ShareGPT file written by `write_llamafactory`."""
    return {"file_name": file_name, "formatting": "sharegpt",
            "columns": {"messages": "conversations", "system": "system"}, "tags": dict(LLAMAFACTORY_TAGS)}


def write_llamafactory(out_dir: str | Path, splits: dict[str, list[Example]], name_prefix: str = "tabcoder") -> dict:
    """Write `<prefix>_<split>.json` (ShareGPT) per split and add their entries (datasets named
    `<prefix>_<split>`) to `out_dir/dataset_info.json`, keeping the entries already there.
    Returns the entries written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info_path = out_dir / "dataset_info.json"
    info = {}
    if info_path.exists():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{info_path}: invalid JSON ({exc.msg} at line {exc.lineno}); fix or remove it") from None
        if not isinstance(info, dict):
            raise ConfigError(f"{info_path}: must hold an object of dataset entries; fix or remove it")
    entries = {}
    for split, examples in splits.items():
        file_name = f"{name_prefix}_{split}.json"
        records = [_llamafactory_record(example) for example in examples]
        (out_dir / file_name).write_text(json.dumps(records, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        entries[f"{name_prefix}_{split}"] = llamafactory_entry(file_name)
    info.update(entries)
    info_path.write_text(json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return entries


def write_data(out: Path, splits: dict[str, list[Example]], manifest: dict) -> None:
    """A data folder: `<split>.jsonl` per split, the LLaMA-Factory files and `manifest.json` (given, plus the
    file names)."""
    out.mkdir(parents=True, exist_ok=True)
    for split, examples in splits.items():
        write_examples(out / f"{split}.jsonl", examples)
    manifest["files"] = {split: f"{split}.jsonl" for split in splits}
    manifest["llamafactory"] = write_llamafactory(out, splits)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
