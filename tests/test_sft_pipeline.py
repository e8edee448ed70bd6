"""The fine-tuning pipeline on the packaged SmolLM2-135M-Instruct GGUF: train, resume, export, serve.

Real torch/transformers/peft training on the CPU, a real GGUF written with the `gguf` package and loaded
by llama.cpp, and the tuned model's greedy output compared between the `hf:` and `llamacpp:` backends.
Examples are short so that a step takes well under a second.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("gguf")

from click.testing import CliRunner  # noqa: E402

from tabcoder.backends import get_backend  # noqa: E402
from tabcoder.backends.hf import parse_spec  # noqa: E402
from tabcoder.cli import main  # noqa: E402
from tabcoder.errors import BackendError, ConfigError  # noqa: E402
from tabcoder.sft.data import Example, write_examples  # noqa: E402
from tabcoder.sft.train import TrainConfig, _batches, encode, train  # noqa: E402

BASE = "local:smollm2-135m"
SYSTEM = "You write short Python scripts. Answer with a single ```python code block."
PROMPT = [{"role": "system", "content": SYSTEM},
          {"role": "user", "content": "Read input/train.csv and print the number of rows."}]


def _example(task: str, column: str) -> Example:
    code = f"import pandas as pd\ndf = pd.read_csv('input/{task}.csv')\nprint(df['{column}'].mean())"
    return Example([{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"Print the mean of column {column} of input/{task}.csv."},
                    {"role": "assistant", "content": f"```python\n{code}\n```"}], {"task": task})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sft-data")
    write_examples(root / "train.jsonl", [_example(t, c) for t, c in
                                          [("train", "age"), ("houses", "price"), ("cars", "speed"), ("wine", "acid")]])
    write_examples(root / "eval.jsonl", [_example("penguins", "mass"), _example("ships", "length")])
    return root


def _config(data_dir: Path, out: Path, **kw) -> TrainConfig:
    settings = dict(base=BASE, data=str(data_dir), out=str(out), max_steps=6, batch_size=2, grad_accum=1,
                    learning_rate=2e-3, warmup_steps=1, lora_r=8, lora_alpha=16, lora_dropout=0.0, save_every=3,
                    eval_examples=2, max_length=512, seed=0)
    settings.update(kw)
    return TrainConfig(**settings)


@pytest.fixture(scope="module")
def trained(data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    return train(_config(data_dir, tmp_path_factory.mktemp("run") / "out"))


@pytest.mark.slow
def test_training_lowers_the_loss_and_leaves_its_files(trained) -> None:
    out, s = trained.out, trained.summary
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]
    assert sum(r["loss"] for r in log[-2:]) < sum(r["loss"] for r in log[:2])
    assert s["eval_loss_after"] < s["eval_loss_before"]  # held-out examples of the same shape
    assert s["steps"] == 6 and s["examples"] == 4 and s["peak_memory_mb"] > 0 and s["seconds_per_step"] > 0
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert json.loads((out / "adapter" / "adapter_config.json").read_text())["r"] == 8
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000003", "step-000006"]
    yaml = (out / "llamafactory.yaml").read_text()
    assert "finetuning_type: lora" in yaml and "dataset: tabcoder_train" in yaml and "lora_rank: 8" in yaml
    assert "template: chatml" in yaml
    sft = json.loads((out / "sft.json").read_text())
    assert sft["base"]["source_gguf"].endswith(".gguf") and sft["device"] == "cpu"


@pytest.mark.slow
def test_resume_after_an_interruption_gives_the_same_adapter(data_dir: Path, trained, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    out = tmp_path / "out"

    def stop_after_four(kind: str, data: dict) -> None:
        if kind == "step" and data["step"] == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_config(data_dir, out), progress=stop_after_four)
    assert not (out / "adapter").exists()
    with pytest.raises(ConfigError, match="--resume"):
        train(_config(data_dir, out))  # never starts over a run by accident
    with pytest.raises(ConfigError, match="lora_r"):
        train(_config(data_dir, out, lora_r=4), resume=True)
    with pytest.raises(ConfigError, match="--target"):
        train(_config(data_dir, tmp_path / "other", target_modules=["no_such_proj"]))
    events = []  # gradient checkpointing may be turned on when going on: it gives the same losses
    result = train(_config(data_dir, out, gradient_checkpointing=True), resume=True,
                   progress=lambda kind, data: events.append((kind, data)))
    assert next(d for k, d in events if k == "train_start")["resumed_at"] == 3
    log = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert log == [1, 2, 3, 4, 5, 6]
    resumed = load_file(result.adapter_dir / "adapter_model.safetensors")
    straight = load_file(trained.adapter_dir / "adapter_model.safetensors")
    assert resumed.keys() == straight.keys()
    for key in straight:
        assert (resumed[key] - straight[key]).abs().max().item() < 1e-5, key


@pytest.mark.slow
def test_export_gguf_runs_in_llama_cpp_like_the_hf_backend(trained, tmp_path: Path) -> None:
    from tabcoder.sft.export import export

    result = export(str(trained.out), tmp_path / "tuned.gguf", outtype="f32", quantize="q8_0")
    assert result.gguf.stat().st_size > 100e6 and result.copied == []
    assert result.quantized.stat().st_size < result.gguf.stat().st_size / 2
    with get_backend(f"hf:{trained.out}", threads=1) as hf:
        expected = hf.complete(PROMPT, temperature=0, max_tokens=32)
    with get_backend(f"llamacpp:{result.gguf}", threads=1, n_ctx=1024) as llama:
        got = llama.complete(PROMPT, temperature=0, max_tokens=32)
    assert expected.completion_tokens > 5
    assert got.text == expected.text
    with get_backend(f"llamacpp:{result.quantized}", threads=1, n_ctx=1024) as quantised:
        assert quantised.complete(PROMPT, temperature=0, max_tokens=8).completion_tokens > 0
    # the adapter changed the model: the base answers differently somewhere on the training prompt
    base_dir = json.loads((trained.out / "sft.json").read_text())["base"]["hf_dir"]
    with get_backend(f"hf:{base_dir}", threads=1) as base, get_backend(f"hf:{trained.out}", threads=1) as tuned:
        prompt = _example("cars", "speed").messages[:-1]
        assert base.complete(prompt, temperature=0, max_tokens=24).text != \
            tuned.complete(prompt, temperature=0, max_tokens=24).text


@pytest.mark.slow
def test_f16_export_keeps_the_base_metadata(trained, tmp_path: Path) -> None:
    import gguf

    from tabcoder.sft.export import export

    result = export(str(trained.out), tmp_path / "tuned.gguf")  # f16, the default
    tuned, base = gguf.GGUFReader(result.gguf), gguf.GGUFReader(json.loads(
        (trained.out / "sft.json").read_text())["base"]["source_gguf"])
    kinds = {t.name: t.tensor_type for t in tuned.tensors}
    assert kinds["blk.0.attn_q.weight"] == gguf.GGMLQuantizationType.F16
    assert kinds["blk.0.attn_norm.weight"] == gguf.GGMLQuantizationType.F32
    assert [t.name for t in tuned.tensors] == [t.name for t in base.tensors]
    for key in ("tokenizer.chat_template", "tokenizer.ggml.model", "llama.block_count"):
        assert tuned.fields[key].contents() == base.fields[key].contents()
    with get_backend(f"llamacpp:{result.gguf}", threads=1, n_ctx=1024) as llama:
        assert llama.complete(PROMPT, temperature=0, max_tokens=8).completion_tokens > 0


@pytest.mark.slow
def test_cli_train_and_export(data_dir: Path, trained, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli-out"
    done = runner.invoke(main, ["sft", "train", str(data_dir), "--base", BASE, "--out", str(out), "--max-steps", "2",
                                "--grad-accum", "1", "--lora-r", "4", "--eval-examples", "1", "-q"])
    assert done.exit_code == 0, done.output
    assert "adapter:" in done.output and (out / "adapter" / "adapter_model.safetensors").is_file()
    again = runner.invoke(main, ["sft", "train", str(data_dir), "--base", BASE, "--out", str(out), "-q"])
    assert again.exit_code == 2 and "error:" in again.output and "--resume" in again.output
    existing = tmp_path / "taken.gguf"
    existing.write_text("mine")
    refused = runner.invoke(main, ["sft", "export", str(out), str(existing)])
    assert refused.exit_code == 2 and "exists" in refused.output and existing.read_text() == "mine"
    merged = tmp_path / "merged"
    done = runner.invoke(main, ["sft", "export", str(out), "--hf-out", str(merged)])
    assert done.exit_code == 0, done.output
    assert (merged / "config.json").is_file() and "hf:" in done.output


@pytest.mark.slow
def test_a_hugging_face_folder_is_a_base_too(data_dir: Path, trained, tmp_path: Path) -> None:
    from tabcoder.sft.export import export

    folder = json.loads((trained.out / "sft.json").read_text())["base"]["hf_dir"]
    (tmp_path / "plain").mkdir()
    for item in Path(folder).iterdir():  # the same weights, without the note of the GGUF they came from
        if item.name != "tabcoder_base.json":
            (tmp_path / "plain" / item.name).symlink_to(item)
    result = train(_config(data_dir, tmp_path / "out", base=str(tmp_path / "plain"), max_steps=1, eval_examples=0))
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()
    assert json.loads((result.out / "sft.json").read_text())["base"]["source_gguf"] is None
    with pytest.raises(ConfigError, match="convert_hf_to_gguf"):
        export(str(result.out), tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()


@pytest.mark.slow
def test_gradient_checkpointing_gives_the_same_losses(data_dir: Path, tmp_path: Path) -> None:
    plain = train(_config(data_dir, tmp_path / "plain", max_steps=2, eval_examples=1))
    saved = train(_config(data_dir, tmp_path / "ckpt", max_steps=2, eval_examples=1, gradient_checkpointing=True))
    for key in ("train_loss_first", "train_loss_last", "eval_loss_after"):
        assert saved.summary[key] == pytest.approx(plain.summary[key], rel=1e-4), key


def test_cli_errors_without_traceback(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(main, ["sft", "train", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")])
    assert missing.exit_code == 2 and "does not exist" in missing.output and "Traceback" not in missing.output
    folder = tmp_path / "data"
    folder.mkdir()
    no_train = runner.invoke(main, ["sft", "train", str(folder), "--out", str(tmp_path / "o")])
    assert no_train.exit_code == 2 and "train.jsonl" in no_train.output
    not_adapter = runner.invoke(main, ["sft", "export", str(folder), str(tmp_path / "x.gguf")])
    assert not_adapter.exit_code == 2 and "error:" in not_adapter.output


def test_encode_learns_only_the_reply(data_dir: Path) -> None:
    from transformers import AutoTokenizer

    from tabcoder.sft.model import resolve_base

    tokenizer = AutoTokenizer.from_pretrained(resolve_base(BASE).hf_dir)
    example = _example("cars", "speed")
    item = encode(tokenizer, example)
    learned = [t for t in item.labels if t != -100]
    prompt_len = item.labels.index(learned[0])
    assert all(label == -100 for label in item.labels[:prompt_len])
    assert item.input_ids[prompt_len:] == learned
    text = tokenizer.decode(learned)
    assert text.startswith("```python\nimport pandas") and text.rstrip().endswith("<|im_end|>")
    assert tokenizer.decode(item.input_ids[:prompt_len]).endswith("<|im_start|>assistant\n")


def test_batches_cover_every_example_once_per_epoch() -> None:
    config = TrainConfig(base="x", data="x", out="x", batch_size=2, grad_accum=2, seed=3)
    plan = _batches(8, config, total_steps=4)  # two epochs of 8 examples, 4 per step
    flat = [i for step in plan for micro in step for i in micro]
    assert sorted(flat[:8]) == list(range(8)) and sorted(flat[8:]) == list(range(8))
    assert flat[:8] != flat[8:]  # a fresh shuffle per epoch
    assert _batches(8, config, total_steps=4) == plan


def test_hf_model_string() -> None:
    assert parse_spec("/m") == ("/m", None)
    assert parse_spec("/m,adapter=/a") == ("/m", "/a")
    with pytest.raises(BackendError, match="adapter"):
        parse_spec("/m,lora=/a")
    with pytest.raises(BackendError, match="does not exist"):
        get_backend("hf:/no/such/model")


def test_threads_zero_means_every_core() -> None:
    import os

    from tabcoder.sft.model import cpu_threads

    assert cpu_threads(0) == (os.cpu_count() or 1) and cpu_threads(3) == 3
    with pytest.raises(ConfigError, match="threads"):
        cpu_threads(-1)
