"""LoRA fine-tuning of a chat model on examples, with transformers + peft.

Scope: the training loop itself (AdamW, linear warm-up then cosine decay, gradient accumulation weighted
by completion tokens, gradient clipping), evaluation loss on held-out examples before and after, and what
a run leaves in its output folder:

    sft.json            the settings, the base model and its source GGUF, the data files
    llamafactory.yaml   the same run as a LLaMA-Factory config (for GPU users; `sft.llamafactory`)
    train_log.jsonl     one line per optimizer step: loss, learning rate, tokens, seconds
    checkpoints/step-N/ the last two checkpoints (`sft.checkpoints`: `resume=True` continues from one
                        exactly: adapter, optimizer, scheduler, random state, step)
    adapter/            the final LoRA adapter and the tokenizer
    loss.png            the loss curve
    summary.json        steps, seconds per step, peak memory, losses before/after

The examples reach the loop through `sft.encoding` (chat template, loss on the last assistant turn only,
seeded micro-batches). Logits are computed only at positions whose next token is learned
(`logits_to_keep`), which saves the output layer's work (and the memory of its logits) on prompt tokens.
Nothing here writes GGUF files (`sft.export`).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tabcoder.errors import ConfigError
from tabcoder.events import Eval, Step, TrainEnd, TrainStart, emit_event, event_data
from tabcoder.sft.checkpoints import check_out, latest_checkpoint, save_checkpoint, truncate_log
from tabcoder.sft.data import read_examples
from tabcoder.sft.encoding import Encoded, batches, collate, data_files, encode, encode_all
from tabcoder.sft.llamafactory import write_llamafactory_yaml
from tabcoder.sft.model import (
    TRAIN_MARKER,
    cpu_threads,
    import_torch,
    load_model,
    load_tokenizer,
    peak_memory_mb,
    pick_device,
    resolve_base,
)

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_TARGETS", "TrainConfig", "TrainResult", "encode", "evaluate", "plot_loss", "train"]

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


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
class TrainResult:
    out: Path
    adapter_dir: Path
    summary: dict  # steps, seconds per step, peak memory, losses (also in summary.json)


Progress = Callable[[str, dict], None]
_batches = batches  # the seeded batch plan, under the name its tests import

def _schedule(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

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
            loss, n = _loss_sum(model, collate([item], pad_id, device))
            total += float(loss)
            count += n
    model.train()
    return total / max(1, count)

def train(config: TrainConfig, *, resume: bool = False, progress: Progress | None = None) -> TrainResult:
    """Train a LoRA adapter; see the module docstring for what `config.out` receives."""
    say = progress or (lambda kind, data: None)
    out = Path(config.out).expanduser()
    check_out(out, config, resume)
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
    train_items, too_long = encode_all(tokenizer, train_examples, config.max_length)
    eval_items, eval_too_long = encode_all(tokenizer, eval_examples, config.max_length)
    if not train_items:
        raise ConfigError(f"no training example fits in --max-length {config.max_length} tokens "
                          f"({len(train_examples)} read from {train_file}); raise --max-length")
    per_step = config.batch_size * config.grad_accum
    total_steps = config.max_steps or max(1, math.ceil(config.epochs * len(train_items) / per_step))
    plan = batches(len(train_items), config, total_steps)

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

    checkpoint = latest_checkpoint(out) if resume else None
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
            truncate_log(out / "train_log.jsonl", 0)
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
        truncate_log(out / "train_log.jsonl", state["step"])
    pad_id = tokenizer.pad_token_id
    emit_event(say, TrainStart(out=out, base=base, device=device, examples=len(train_items), too_long=too_long,
                               eval_examples=len(eval_items), steps=total_steps, resumed_at=state["step"],
                               trainable=sum(p.numel() for p in params)))
    if checkpoint is None and eval_items:
        state["eval_loss_before"] = evaluate(model, eval_items, pad_id, device)
        emit_event(say, Eval(when="before", loss=state["eval_loss_before"]))

    t_train = time.perf_counter()
    first_step = state["step"]
    with (out / "train_log.jsonl").open("a") as log_file:
        for step in range(first_step, total_steps):
            t0 = time.perf_counter()
            micro = [[train_items[i] for i in ids] for ids in plan[step]]
            learned = sum(item.learned for batch in micro for item in batch)
            total_loss = 0.0
            for batch_items in micro:
                loss, _ = _loss_sum(model, collate(batch_items, pad_id, device))
                (loss / learned).backward()
                total_loss += float(loss.detach())
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, 1.0))
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            done = Step(step=step + 1, loss=total_loss / learned, lr=scheduler.get_last_lr()[0],
                        grad_norm=grad_norm, tokens=sum(len(i.input_ids) for b in micro for i in b),
                        learned_tokens=learned, seconds=time.perf_counter() - t0, total=total_steps)
            record = {name: value for name, value in event_data(done).items() if name != "total"}
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
            state["step"] = step + 1
            emit_event(say, done)
            if (step + 1) % config.save_every == 0 or step + 1 == total_steps:
                save_checkpoint(out, model, optimizer, scheduler, state)
    train_seconds = time.perf_counter() - t_train

    eval_after = evaluate(model, eval_items, pad_id, device) if eval_items else None
    if eval_items:
        emit_event(say, Eval(when="after", loss=eval_after))
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
    emit_event(say, TrainEnd(summary=summary, adapter_dir=adapter_dir))
    return TrainResult(out, adapter_dir, summary)


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
