"""LoRA fine-tuning of a chat model on examples, with transformers + peft.

Scope: encoding examples with the model's chat template (the loss covers the last assistant turn only:
prompt tokens are labelled -100), a plain training loop (AdamW, linear warm-up then cosine decay,
gradient accumulation weighted by completion tokens, gradient clipping), evaluation loss on held-out
examples before and after, checkpoints that `resume=True` continues from exactly (adapter, optimizer,
scheduler, step), and what a run leaves in its output folder:

    sft.json            the settings, the base model and its source GGUF, the data files
    llamafactory.yaml   the same run as a LLaMA-Factory config (for GPU users)
    train_log.jsonl     one line per optimizer step: loss, learning rate, tokens, seconds
    checkpoints/step-N/ the last two checkpoints
    adapter/            the final LoRA adapter and the tokenizer
    loss.png            the loss curve
    summary.json        steps, seconds per step, peak memory, losses before/after

Logits are computed only at positions whose next token is learned (`logits_to_keep`), which saves the
output layer's work (and the memory of its logits) on prompt tokens.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tabcoder.errors import ConfigError
from tabcoder.sft.data import Example, read_examples
from tabcoder.sft.model import (
    TRAIN_MARKER,
    BaseModel,
    cpu_threads,
    import_torch,
    load_model,
    load_tokenizer,
    peak_memory_mb,
    pick_device,
    resolve_base,
)

log = logging.getLogger(__name__)

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
KEEP_CHECKPOINTS = 2
# settings that may differ when a run is resumed (the rest must match what the run started with)
RESUMABLE = {"max_steps", "epochs", "save_every", "threads", "device", "eval_examples"}


@dataclass
class TrainConfig:
    base: str  # local[:name], a .gguf file, or a Hugging Face folder
    data: str  # a folder with train.jsonl (and eval.jsonl), or one .jsonl file
    out: str
    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs
    learning_rate: float = 2e-4
    batch_size: int = 1
    grad_accum: int = 4
    warmup_steps: int = 2
    max_length: int = 2048  # longer examples are left out (never cut: a cut script teaches nothing)
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))
    save_every: int = 10
    eval_examples: int = 16  # held-out examples scored before and after (0: none)
    threads: int = 0  # 0: every CPU core
    device: str = "auto"
    seed: int = 0
    gradient_checkpointing: bool = False


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]  # -100 on the prompt

    @property
    def learned(self) -> int:
        return sum(1 for label in self.labels if label != -100)


@dataclass
class TrainResult:
    out: Path
    adapter_dir: Path
    summary: dict  # steps, seconds per step, peak memory, losses (also in summary.json)


Progress = Callable[[str, dict], None]


def data_files(data: str) -> tuple[Path, Path | None]:
    path = Path(data).expanduser()
    if path.is_dir():
        train = path / "train.jsonl"
        if not train.is_file():
            raise ConfigError(f"{path} has no train.jsonl; make one with `tabcoder sft data import|distill`")
        held = path / "eval.jsonl"
        return train, held if held.is_file() and held.stat().st_size else None
    if path.is_file():
        return path, None
    raise ConfigError(f"training data {data!r} does not exist; give a folder made by `tabcoder sft data` "
                      "or a .jsonl file of examples")


def encode(tokenizer: Any, example: Example) -> Encoded:
    """Token ids of the whole chat and labels that learn only the last (assistant) message.

    The prompt is tokenized on its own, as a backend does before generating, and the completion is what
    the chat template puts after it (the reply plus the template's end-of-turn tokens).
    """
    messages = example.messages
    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if full.startswith(prompt):
        completion = full[len(prompt):]
    else:  # a template that rewrites earlier turns once a reply follows: reply + end of sequence
        completion = messages[-1]["content"] + (tokenizer.eos_token or "")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    return Encoded(prompt_ids + completion_ids, [-100] * len(prompt_ids) + completion_ids)


def _encode_all(tokenizer: Any, examples: list[Example], max_length: int) -> tuple[list[Encoded], int]:
    kept, too_long = [], 0
    for example in examples:
        item = encode(tokenizer, example)
        if len(item.input_ids) > max_length:
            too_long += 1
        else:
            kept.append(item)
    return kept, too_long


def _schedule(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _batches(n: int, config: TrainConfig, total_steps: int) -> list[list[list[int]]]:
    """The example indices of every micro-batch of every step: a fresh seeded shuffle per epoch."""
    per_step = config.batch_size * config.grad_accum
    stream: list[int] = []
    epoch = 0
    while len(stream) < total_steps * per_step:
        order = list(range(n))
        random.Random(config.seed * 1000 + epoch).shuffle(order)
        stream.extend(order)
        epoch += 1
    steps = []
    for s in range(total_steps):
        chunk = stream[s * per_step:(s + 1) * per_step]
        steps.append([chunk[i:i + config.batch_size] for i in range(0, per_step, config.batch_size)])
    return steps


def _collate(items: list[Encoded], pad_id: int, device: str) -> dict:
    import torch  # imported and checked by train()
    width = max(len(item.input_ids) for item in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), -100, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, item in enumerate(items):
        n = len(item.input_ids)
        ids[row, :n] = torch.tensor(item.input_ids)
        labels[row, :n] = torch.tensor(item.labels)
        mask[row, :n] = 1
    # no padding: no mask, so that attention can take its causal fast path
    attention_mask = None if bool(mask.all()) else mask.to(device)
    return {"input_ids": ids.to(device), "labels": labels.to(device), "attention_mask": attention_mask}


def _loss_sum(model: Any, batch: dict) -> tuple[Any, int]:
    """Summed cross-entropy over learned tokens, and how many there are (logits only where needed)."""
    import torch  # imported and checked by train()
    targets = batch["labels"][:, 1:]
    learned = (targets != -100).any(dim=0).nonzero().squeeze(-1)  # positions whose next token is learned
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=learned)
    logits = out.logits.float()  # (batch, len(learned), vocab)
    picked = targets[:, learned]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), picked.reshape(-1),
                                             ignore_index=-100, reduction="sum")
    return loss, int((picked != -100).sum())


def evaluate(model: Any, items: list[Encoded], pad_id: int, device: str) -> float | None:
    """Mean loss per learned token over `items` (None when there are none)."""
    if not items:
        return None
    import torch  # imported and checked by train()
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for item in items:
            loss, n = _loss_sum(model, _collate([item], pad_id, device))
            total += float(loss)
            count += n
    model.train()
    return total / max(1, count)


def _check_out(out: Path, config: TrainConfig, resume: bool) -> None:
    marker = out / TRAIN_MARKER
    if resume:
        if not marker.is_file():
            raise ConfigError(f"nothing to resume in {out} (no {TRAIN_MARKER}); start a run there without --resume")
        started = json.loads(marker.read_text())["config"]
        mine = asdict(config)
        differing = sorted(k for k in started if k not in RESUMABLE and k in mine and started[k] != mine[k]
                           and k not in ("base", "data", "out"))
        if differing:
            raise ConfigError(f"--resume with settings that differ from the run's start: {', '.join(differing)}; "
                              f"the run in {out} started with " +
                              ", ".join(f"{k}={started[k]!r}" for k in differing))
    elif out.exists() and any(out.iterdir()):
        hint = " (a fine-tuning run: add --resume to continue it)" if marker.is_file() else ""
        raise ConfigError(f"output folder {out} exists and is not empty{hint}; choose a new --out")


def _latest_checkpoint(out: Path) -> Path | None:
    done = sorted(p for p in (out / "checkpoints").glob("step-*") if (p / "state.json").is_file())
    return done[-1] if done else None


def train(config: TrainConfig, *, resume: bool = False, progress: Progress | None = None) -> TrainResult:
    """Train a LoRA adapter; see the module docstring for what `config.out` receives."""
    say = progress or (lambda kind, data: None)
    out = Path(config.out).expanduser()
    _check_out(out, config, resume)
    for name in ("batch_size", "grad_accum", "max_length", "lora_r"):
        if getattr(config, name) < 1:
            raise ConfigError(f"{name} must be at least 1 (got {getattr(config, name)})")
    torch = import_torch()
    threads = cpu_threads(config.threads)
    torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    device, dtype = pick_device(config.device)
    train_file, eval_file = data_files(config.data)
    train_examples = read_examples(train_file)
    eval_examples = read_examples(eval_file)[:config.eval_examples] if eval_file and config.eval_examples else []

    base = resolve_base(config.base)
    tokenizer = load_tokenizer(base)
    train_items, too_long = _encode_all(tokenizer, train_examples, config.max_length)
    eval_items, eval_too_long = _encode_all(tokenizer, eval_examples, config.max_length)
    if not train_items:
        raise ConfigError(f"no training example fits in --max-length {config.max_length} tokens "
                          f"({len(train_examples)} read from {train_file}); raise --max-length")
    per_step = config.batch_size * config.grad_accum
    total_steps = config.max_steps or max(1, math.ceil(config.epochs * len(train_items) / per_step))
    plan = _batches(len(train_items), config, total_steps)

    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        (out / TRAIN_MARKER).write_text(json.dumps({
            "config": asdict(config), "base": {"name": base.name, "hf_dir": str(base.hf_dir),
                                               "source_gguf": str(base.source_gguf) if base.source_gguf else None},
            "data": {"train": str(train_file.resolve()), "eval": str(eval_file.resolve()) if eval_file else None},
            "device": device, "dtype": str(dtype).replace("torch.", ""),
        }, indent=1))
        write_llamafactory_yaml(out, config, base, train_file, eval_file, tokenizer)

    from peft import LoraConfig, get_peft_model

    checkpoint = _latest_checkpoint(out) if resume else None
    if checkpoint is not None:
        model = load_model(base, device, dtype, adapter=checkpoint / "adapter", trainable=True)
    else:
        model = load_model(base, device, dtype)
        torch.manual_seed(config.seed)  # the adapter's initialisation depends on the seed only
        try:
            model = get_peft_model(model, LoraConfig(
                r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                target_modules=list(config.target_modules), task_type="CAUSAL_LM"))
        except ValueError as exc:  # peft: "Target modules {...} not found in the base model"
            raise ConfigError(f"cannot put LoRA adapters on {', '.join(config.target_modules)}: {exc}; "
                              "name the model's linear layers with --target") from exc
        if resume:  # interrupted before its first checkpoint: start over, without the old log lines
            _truncate_log(out / "train_log.jsonl", 0)
    if config.gradient_checkpointing:
        # transformers 5 renamed the method; 4.x has only the old name
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        enable()
        model.enable_input_require_grads()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: _schedule(s, total_steps, config.warmup_steps))
    state: dict[str, Any] = {"step": 0, "eval_loss_before": None}
    if checkpoint is not None:
        optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
        scheduler.load_state_dict(torch.load(checkpoint / "scheduler.pt", weights_only=True))
        state = json.loads((checkpoint / "state.json").read_text())
        torch.set_rng_state(torch.load(checkpoint / "rng.pt", weights_only=True))  # dropout continues as it was
        _truncate_log(out / "train_log.jsonl", state["step"])
    pad_id = tokenizer.pad_token_id
    say("train_start", {"out": out, "base": base, "device": device, "examples": len(train_items),
                        "too_long": too_long, "eval_examples": len(eval_items), "steps": total_steps,
                        "resumed_at": state["step"], "trainable": sum(p.numel() for p in params)})
    if checkpoint is None and eval_items:
        state["eval_loss_before"] = evaluate(model, eval_items, pad_id, device)
        say("eval", {"when": "before", "loss": state["eval_loss_before"]})

    t_train = time.perf_counter()
    first_step = state["step"]
    with (out / "train_log.jsonl").open("a") as log_file:
        for step in range(first_step, total_steps):
            t0 = time.perf_counter()
            micro = [[train_items[i] for i in ids] for ids in plan[step]]
            learned = sum(item.learned for batch in micro for item in batch)
            total_loss = 0.0
            for batch_items in micro:
                loss, _ = _loss_sum(model, _collate(batch_items, pad_id, device))
                (loss / learned).backward()
                total_loss += float(loss.detach())
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, 1.0))
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            record = {"step": step + 1, "loss": total_loss / learned, "lr": scheduler.get_last_lr()[0],
                      "grad_norm": grad_norm, "tokens": sum(len(i.input_ids) for b in micro for i in b),
                      "learned_tokens": learned, "seconds": time.perf_counter() - t0}
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
            state["step"] = step + 1
            say("step", {**record, "total": total_steps})
            if (step + 1) % config.save_every == 0 or step + 1 == total_steps:
                _save_checkpoint(out, model, optimizer, scheduler, state)
    train_seconds = time.perf_counter() - t_train

    eval_after = evaluate(model, eval_items, pad_id, device) if eval_items else None
    if eval_items:
        say("eval", {"when": "after", "loss": eval_after})
    adapter_dir = out / "adapter"
    shutil.rmtree(adapter_dir, ignore_errors=True)
    model.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    steps_log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]
    summary = {
        "steps": state["step"], "examples": len(train_items), "left_out_too_long": too_long,
        "eval_examples": len(eval_items), "eval_left_out_too_long": eval_too_long,
        "device": device, "threads": threads,
        "seconds_per_step": (train_seconds / (state["step"] - first_step)) if state["step"] > first_step else None,
        "peak_memory_mb": round(peak_memory_mb(device), 1),
        "train_loss_first": steps_log[0]["loss"] if steps_log else None,
        "train_loss_last": steps_log[-1]["loss"] if steps_log else None,
        "eval_loss_before": state.get("eval_loss_before"), "eval_loss_after": eval_after,
        "trainable_parameters": sum(p.numel() for p in params),
        "tokens_per_step": (sum(r["tokens"] for r in steps_log) / len(steps_log)) if steps_log else None,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    plot_loss(steps_log, summary, out / "loss.png")
    say("train_end", {"summary": summary, "adapter_dir": adapter_dir})
    return TrainResult(out, adapter_dir, summary)


def _save_checkpoint(out: Path, model: Any, optimizer: Any, scheduler: Any, state: dict) -> None:
    import torch  # imported and checked by train()
    root = out / "checkpoints"
    final = root / f"step-{state['step']:06d}"
    tmp = root / f".tmp-{state['step']:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp / "adapter")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(torch.get_rng_state(), tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps(state))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(p for p in root.glob("step-*"))[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines past the checkpoint a resumed run restarts from."""
    if not path.is_file():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in lines))


def plot_loss(steps_log: list[dict], summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    if steps_log:
        ax.plot([r["step"] for r in steps_log], [r["loss"] for r in steps_log], label="train loss", color="#2b6cb0")
    last = steps_log[-1]["step"] if steps_log else 0
    if summary.get("eval_loss_before") is not None:
        ax.scatter([0], [summary["eval_loss_before"]], color="#c05621", label="held-out loss", zorder=3)
    if summary.get("eval_loss_after") is not None:
        ax.scatter([last], [summary["eval_loss_after"]], color="#c05621", zorder=3)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    values = [r["loss"] for r in steps_log if r["loss"] > 0]
    if values and max(values) / min(values) > 30:  # examples of very different difficulty: a log scale shows both
        ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss per learned token")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def llamafactory_template(tokenizer: Any, model_type: str) -> str:
    """LLaMA-Factory's template name for a chat format (checked in its template registry)."""
    template = tokenizer.chat_template or ""
    if model_type in ("qwen2", "qwen2_moe"):
        return "qwen"
    if model_type == "qwen3":
        return "qwen3"
    if "<|start_header_id|>" in template:
        return "llama3"
    if "<|im_start|>" in template:
        return "chatml"
    if "[INST]" in template:
        return "mistral"
    if "<start_of_turn>" in template:
        return "gemma"
    return "default"


def write_llamafactory_yaml(out: Path, config: TrainConfig, base: BaseModel, train_file: Path,
                            eval_file: Path | None, tokenizer: Any) -> None:
    """The same run as a LLaMA-Factory config, for `llamafactory-cli train llamafactory.yaml` on a GPU."""
    model_type = json.loads((base.hf_dir / "config.json").read_text()).get("model_type", "")
    data_dir = train_file.parent
    has_info = (data_dir / "dataset_info.json").is_file()
    lines = [
        "# The run of `tabcoder sft train` that wrote this folder, as a LLaMA-Factory config:",
        "#   llamafactory-cli train llamafactory.yaml",
        "### model",
        f"model_name_or_path: {base.hf_dir}",
        "### method",
        "stage: sft", "do_train: true", "finetuning_type: lora",
        f"lora_rank: {config.lora_r}", f"lora_alpha: {config.lora_alpha}", f"lora_dropout: {config.lora_dropout}",
        f"lora_target: {','.join(config.target_modules)}",
        "### dataset",
        f"dataset_dir: {data_dir.resolve()}" + ("" if has_info else "  # no dataset_info.json here: "
                                                "make the data with `tabcoder sft data`"),
        "dataset: tabcoder_train",
        *(["eval_dataset: tabcoder_eval"] if eval_file else []),
        f"template: {llamafactory_template(tokenizer, model_type)}",
        f"cutoff_len: {config.max_length}",
        "### output",
        f"output_dir: {(out / 'llamafactory').resolve()}",
        "logging_steps: 1", f"save_steps: {config.save_every}", "plot_loss: true",
        "### train",
        f"per_device_train_batch_size: {config.batch_size}",
        f"gradient_accumulation_steps: {config.grad_accum}",
        f"learning_rate: {config.learning_rate}",
        *([f"max_steps: {config.max_steps}"] if config.max_steps else [f"num_train_epochs: {config.epochs}"]),
        "lr_scheduler_type: cosine", f"warmup_steps: {config.warmup_steps}",
        "bf16: true", f"seed: {config.seed}",
    ]
    (out / "llamafactory.yaml").write_text("\n".join(lines) + "\n")
