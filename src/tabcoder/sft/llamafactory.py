"""A fine-tuning run as a LLaMA-Factory config, for GPU users: `llamafactory-cli train llamafactory.yaml`.

Scope: the LLaMA-Factory template name for a chat format (`llamafactory_template`) and the YAML file of
the same run (`write_llamafactory_yaml`: model, LoRA, data set, schedule). Nothing here trains.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tabcoder.sft.model import BaseModel

if TYPE_CHECKING:
    from tabcoder.sft.train import TrainConfig


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
