"""Fine-tuning examples: canonical JSONL, alpaca / ShareGPT / OpenAI import and export, LLaMA-Factory files,
and the `data import` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tabcoder.cli_sft_data import data_group
from tabcoder.errors import ConfigError
from tabcoder.sft.data import (Example, detect_format, import_file, llamafactory_entry, read_examples, to_alpaca,
                               to_openai, to_sharegpt, write_examples, write_llamafactory)

ALPACA = [
    {"instruction": "Fit a model.", "input": "train.csv has 3 columns", "output": "```python\nprint(1)\n```",
     "system": "You write Python.",
     "history": [["What is pandas?", "A table library."], ["And numpy?", "Arrays."]]},
    {"instruction": "Say hi.", "input": "", "output": "hi"},
    {"instruction": "", "input": "only input", "output": "ok"},
]
SHAREGPT = [
    {"conversations": [{"from": "human", "value": "q1"}, {"from": "gpt", "value": "a1"},
                       {"from": "human", "value": "q2"}, {"from": "gpt", "value": "a2"}],
     "system": "be brief"},
    {"conversations": [{"from": "human", "value": "only"}, {"from": "gpt", "value": "answer"}]},
]
OPENAI = [
    {"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "u"},
                  {"role": "assistant", "content": "a"}]},
    {"messages": [{"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"},
                  {"role": "user", "content": "u2"}, {"role": "assistant", "content": "a2"}]},
]


def write_json(path: Path, records) -> Path:
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def example(*pairs, system: str | None = None, meta: dict | None = None) -> Example:
    messages = [{"role": "system", "content": system}] if system else []
    for user, assistant in pairs:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return Example(messages, meta or {})


def test_alpaca_round_trip_with_system_and_history(tmp_path):
    examples = import_file(write_json(tmp_path / "a.json", ALPACA))
    first = examples[0]
    assert [m["role"] for m in first.messages] == ["system", "user", "assistant", "user", "assistant", "user",
                                                   "assistant"]
    assert first.messages[-2]["content"] == "Fit a model.\ntrain.csv has 3 columns"
    assert first.messages[1] == {"role": "user", "content": "What is pandas?"}
    assert examples[1].messages == [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "hi"}]
    assert examples[2].messages[0]["content"] == "only input"
    assert first.meta["source"] == str(tmp_path / "a.json") and first.meta["record"] == 1
    assert [to_alpaca(e) for e in examples] == ALPACA


def test_sharegpt_and_openai_round_trips(tmp_path):
    examples = import_file(write_jsonl(tmp_path / "s.jsonl", SHAREGPT), "sharegpt")
    assert examples[0].messages[0] == {"role": "system", "content": "be brief"}
    assert examples[0].messages[-1] == {"role": "assistant", "content": "a2"}
    assert [to_sharegpt(e) for e in examples] == SHAREGPT
    examples = import_file(write_json(tmp_path / "o.json", OPENAI), "sharegpt")
    assert examples[0].messages == OPENAI[0]["messages"]
    assert [to_openai(e) for e in examples] == OPENAI
    # a ShareGPT system turn inside `conversations` is read as the system prompt
    inline = {"conversations": [{"from": "system", "value": "s"}, *SHAREGPT[1]["conversations"]]}
    assert to_sharegpt(import_file(write_json(tmp_path / "i.json", [inline]))[0]) == {**SHAREGPT[1], "system": "s"}


def test_canonical_jsonl_round_trip(tmp_path):
    examples = [example(("u", "a"), system="s", meta={"task": "t", "score": 0.5}), example(("u1", "a1"), ("u2", "a2"))]
    write_examples(tmp_path / "x.jsonl", examples)
    assert read_examples(tmp_path / "x.jsonl") == examples
    assert Example.from_dict(examples[0].to_dict()) == examples[0]


def test_detect_format(tmp_path):
    assert detect_format(write_json(tmp_path / "a.json", ALPACA)) == "alpaca"
    assert detect_format(write_jsonl(tmp_path / "s.jsonl", SHAREGPT)) == "sharegpt"
    assert detect_format(write_jsonl(tmp_path / "o.jsonl", OPENAI)) == "openai"


@pytest.mark.parametrize("records, expected", [
    ([{"prompt": "x", "completion": "y"}], r"record 1: unknown record shape \(found keys \['completion', 'prompt'\]\); "
                                           r"expected alpaca \('instruction'"),
    ([SHAREGPT[1], {"conversations": [{"from": "human", "value": "q"}]}],
     "record 2: the conversation ends with a user turn; it must end with the assistant's response"),
    ([{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
                    {"role": "user", "content": "more"}]}], "ends with a user turn"),
    ([{"conversations": [{"from": "human", "value": "q"}, {"from": "function_call", "value": "{}"},
                         {"from": "observation", "value": "1"}, {"from": "gpt", "value": "a"}]}],
     r"turn 2 is a tool/function turn \('function_call'\); tool use is not supported"),
    ([{"conversations": [{"from": "narrator", "value": "q"}, {"from": "gpt", "value": "a"}]}],
     "turn 1 has unknown from 'narrator'; expected one of human, user, gpt"),
    ([{"instruction": "x", "input": ""}], r"record 1: no 'output' \(the response to learn\)"),
    ([{"instruction": "x", "output": "y", "history": [["only one"]]}], "history item 1 must be a pair"),
    ([{"conversations": [{"from": "gpt", "value": "a"}]}], "must start with a user message"),
    ({"instruction": "x"}, "must hold a list of records, not a dict"),
])
def test_import_errors_say_where_and_what(tmp_path, records, expected):
    with pytest.raises(ConfigError, match=expected) as info:
        import_file(write_json(tmp_path / "bad.json", records))
    assert str(tmp_path / "bad.json") in str(info.value)


def test_import_error_names_the_bad_jsonl_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ALPACA[1]) + "\n\n" + '{"instruction": "x", \n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.jsonl line 3: invalid JSON"):
        import_file(path)
    with pytest.raises(ConfigError, match="is in sharegpt format"):
        import_file(write_jsonl(tmp_path / "s.jsonl", SHAREGPT), "alpaca")


def test_read_examples_errors_name_the_line(tmp_path):
    good = json.dumps(example(("u", "a")).to_dict())
    cases = {
        "{not json": "line 2: invalid JSON",
        json.dumps({"messages": [{"role": "user", "content": "u"}]}): "line 2: the last message must be the assistant's",
        json.dumps({"messages": [{"role": "robot", "content": "u"}]}): "line 2: message 1 has role 'robot'; use one of",
        json.dumps({"messages": [{"role": "user", "content": 3}]}): "line 2: message 1 content must be a string",
        json.dumps({"messages": []}): "line 2: 'messages' must be a non-empty list",
        json.dumps({"conversations": []}): r"line 2: expected an object with 'messages'",
        json.dumps({"messages": [{"role": "user", "content": "u"}, {"role": "system", "content": "s"},
                                 {"role": "assistant", "content": "a"}]}): "message 2 is a system message",
    }
    for line, expected in cases.items():
        path = tmp_path / "x.jsonl"
        path.write_text(good + "\n" + line + "\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=expected):
            read_examples(path)
    with pytest.raises(ConfigError, match="the last message must be the assistant's"):
        Example([{"role": "user", "content": "u"}], {})


def test_to_alpaca_refuses_turns_that_do_not_alternate():
    two_users = Example([{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                         {"role": "assistant", "content": "c"}], {})
    with pytest.raises(ConfigError, match="must alternate"):
        to_alpaca(two_users)


def test_llamafactory_files(tmp_path):
    train = [example(("u", "a"), system="s", meta={"task": "t"}), example(("u1", "a1"), ("u2", "a2"))]
    evaluation = [example(("e", "f"))]
    entries = write_llamafactory(tmp_path, {"train": train, "eval": evaluation})
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    expected = {"file_name": "tabcoder_train.json", "formatting": "sharegpt",
                "columns": {"messages": "conversations", "system": "system"},
                "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}}
    assert info == entries == {"tabcoder_train": expected, "tabcoder_eval": llamafactory_entry("tabcoder_eval.json")}
    records = json.loads((tmp_path / "tabcoder_train.json").read_text())
    assert records[0] == {"conversations": [{"from": "human", "value": "u"}, {"from": "gpt", "value": "a"}],
                          "system": "s"}
    assert [e.messages for e in import_file(tmp_path / "tabcoder_train.json")] == [e.messages for e in train]
    assert [e.messages for e in import_file(tmp_path / "tabcoder_eval.json")] == [e.messages for e in evaluation]


def test_llamafactory_merges_dataset_info_and_joins_repeated_roles(tmp_path):
    other = {"alpaca_en_demo": {"file_name": "alpaca_en_demo.json"}, "tabcoder_train": {"file_name": "old.json"}}
    (tmp_path / "dataset_info.json").write_text(json.dumps(other))
    two_users = Example([{"role": "system", "content": "s"}, {"role": "user", "content": "task"},
                         {"role": "user", "content": "approach"}, {"role": "assistant", "content": "code"}], {})
    write_llamafactory(tmp_path, {"train": [two_users]}, name_prefix="mine")
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert set(info) == {"alpaca_en_demo", "tabcoder_train", "mine_train"}
    assert info["tabcoder_train"] == {"file_name": "old.json"}
    records = json.loads((tmp_path / "mine_train.json").read_text())
    assert records[0]["conversations"] == [{"from": "human", "value": "task\n\napproach"},
                                           {"from": "gpt", "value": "code"}]
    (tmp_path / "dataset_info.json").write_text("{broken")
    with pytest.raises(ConfigError, match="dataset_info.json: invalid JSON"):
        write_llamafactory(tmp_path, {"train": [two_users]})


def test_cli_import(tmp_path):
    alpaca = write_json(tmp_path / "a.json", ALPACA)
    sharegpt = write_jsonl(tmp_path / "s.jsonl", SHAREGPT)
    out = tmp_path / "out"
    result = CliRunner().invoke(data_group, ["import", str(alpaca), str(sharegpt), "--out", str(out),
                                             "--eval-fraction", "0.4", "--seed", "3"])
    assert result.exit_code == 0, result.output
    train, evaluation = read_examples(out / "train.jsonl"), read_examples(out / "eval.jsonl")
    assert (len(train), len(evaluation)) == (3, 2)
    everything = import_file(alpaca) + import_file(sharegpt)
    assert sorted(json.dumps(e.to_dict()) for e in train + evaluation) == sorted(json.dumps(e.to_dict()) for e in everything)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["examples"] == {"train": 3, "eval": 2}
    assert [(s["format"], s["records"]) for s in manifest["sources"]] == [("alpaca", 3), ("sharegpt", 2)]
    assert set(json.loads((out / "dataset_info.json").read_text())) == {"tabcoder_train", "tabcoder_eval"}
    again = CliRunner().invoke(data_group, ["import", str(alpaca), "--out", str(out)])
    assert again.exit_code == 2
    assert f"error: output folder {out} already exists and is not empty; choose a new --out" in again.output
    bad = CliRunner().invoke(data_group, ["import", str(tmp_path / "missing.json"), "--out", str(tmp_path / "o2")])
    assert bad.exit_code == 2 and "missing.json: no such file" in bad.output
    assert not (tmp_path / "o2").exists()
