"""Training data as the model sees it: examples -> token ids and labels -> seeded micro-batches -> tensors.

Scope: finding the data files (`data_files`), encoding an example with the model's chat template so that
the loss covers the last assistant turn only (prompt tokens are labelled -100; `encode`), leaving out the
examples longer than `max_length` (never cut), the seeded plan of which examples make each micro-batch of
each optimizer step (`batches`), and padding a micro-batch into tensors (`collate`). Nothing here loads a
model or trains (`sft.train`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tabcoder.errors import ConfigError
from tabcoder.sft.data import Example

if TYPE_CHECKING:
    from tabcoder.sft.train import TrainConfig


@dataclass
class Encoded:
    """One example as token ids, with the labels the loss learns."""

    input_ids: list[int]
    labels: list[int]  # -100 on the prompt

    @property
    def learned(self) -> int:
        return sum(1 for label in self.labels if label != -100)


def data_files(data: str) -> tuple[Path, Path | None]:
    """The training file and the held-out file (None if there is none) of a data folder or one .jsonl file."""
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


def encode_all(tokenizer: Any, examples: list[Example], max_length: int) -> tuple[list[Encoded], int]:
    """The examples that fit in `max_length` tokens, encoded, and how many were left out as too long."""
    kept, too_long = [], 0
    for example in examples:
        item = encode(tokenizer, example)
        if len(item.input_ids) > max_length:
            too_long += 1
        else:
            kept.append(item)
    return kept, too_long


def batches(n: int, config: TrainConfig, total_steps: int) -> list[list[list[int]]]:
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


def collate(items: list[Encoded], pad_id: int, device: str) -> dict:
    """A micro-batch as padded tensors on `device` (no attention mask when nothing is padded)."""
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
