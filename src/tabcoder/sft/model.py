"""Base models for fine-tuning and for the `hf:` backend: where the weights are, and loading them.

Scope: `resolve_base` turns what a user names (`local[:name]`, a `.gguf` file, a Hugging Face folder, or
a fine-tuning output / adapter folder) into a `BaseModel`: a Hugging Face folder transformers can train,
the GGUF it came from (export writes the tuned GGUF with that file's metadata and tokenizer), and an
adapter where there is one. transformers loads a GGUF dequantised but refuses to train or save such a
model, so the first use of a GGUF writes a plain float32 copy into the cache
(`<cache>/hf/<name>-<key>/`), reused afterwards. `pick_device` chooses a CUDA GPU in bfloat16 where
there is one, else the CPU in float32.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import logging
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabcoder.errors import ConfigError

log = logging.getLogger(__name__)

SFT_EXTRA_FIX = "pip install 'tabcoder[sft]' (torch==2.13.0 is the CPU build on these machines)"
BASE_MARKER = "tabcoder_base.json"  # written into a trainable copy: the GGUF it was made from
TRAIN_MARKER = "sft.json"  # written into a fine-tuning output folder


@dataclass(frozen=True)
class BaseModel:
    """A trainable Hugging Face folder, the GGUF it came from (if any), and a LoRA adapter (if any)."""

    name: str
    hf_dir: Path
    source_gguf: Path | None = None
    adapter_dir: Path | None = None


@functools.cache
def import_torch() -> Any:
    """torch, after checking that transformers and peft import too (the `sft` extra)."""
    try:
        for name in ("torch", "transformers", "peft"):
            importlib.import_module(name)
    except ImportError as exc:
        raise ConfigError(f"fine-tuning needs torch, transformers and peft ({exc}); fix: {SFT_EXTRA_FIX}") from exc
    transformers = importlib.import_module("transformers")
    transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars; tabcoder prints its own progress
    transformers.utils.logging.set_verbosity_error()
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    return importlib.import_module("torch")


def cpu_threads(requested: int) -> int:
    """`requested` threads, or every CPU core for 0 (torch training scales with cores, unlike llama.cpp
    generation here: a LoRA step of Qwen2.5-Coder-0.5B took 0.59x the time with 2 threads as with 1 on
    2 vCPUs, `benchmarks/bench_sft_threads.py`)."""
    if requested < 0:
        raise ConfigError(f"threads must be 0 (all cores) or more, not {requested}")
    return requested or os.cpu_count() or 1


def pick_device(requested: str = "auto") -> tuple[str, Any]:
    """(device, dtype): CUDA in bfloat16 where available (or asked for), else the CPU in float32."""
    torch = import_torch()
    if requested not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device {requested!r} is not one of auto, cpu, cuda")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda was asked for but torch sees no CUDA GPU; use --device cpu or auto")
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        return "cuda", torch.bfloat16
    return "cpu", torch.float32


def resolve_base(spec: str) -> BaseModel:
    """What `spec` names, as a trainable folder (writing the plain copy of a GGUF on first use)."""
    from tabcoder.backends.weights import ensure_model

    spec = spec.strip()
    if spec == "local" or spec.startswith("local:"):
        from tabcoder.backends.weights import DEFAULT_LOCAL_MODEL

        name = spec.partition(":")[2] or DEFAULT_LOCAL_MODEL
        gguf = ensure_model(name)
        return BaseModel(name, trainable_copy(gguf), gguf)
    path = Path(spec).expanduser()
    if not path.exists():
        raise ConfigError(f"base model {spec!r} does not exist; give local[:name], a .gguf file, "
                          "a Hugging Face model folder or a fine-tuning output folder")
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ConfigError(f"base model file {path} is not a .gguf file; give a GGUF file or a model folder")
        return BaseModel(path.stem, trainable_copy(path), path.resolve())
    if (path / TRAIN_MARKER).is_file() and (path / "adapter").is_dir():
        path = path / "adapter"
    if (path / "adapter_config.json").is_file():
        config = json.loads((path / "adapter_config.json").read_text())
        base_dir = config.get("base_model_name_or_path")
        if not base_dir or not Path(base_dir).is_dir():
            raise ConfigError(f"adapter {path} names base model {base_dir!r}, which is not a folder here; "
                              "give the base explicitly: hf:BASE,adapter=ADAPTER")
        base = _folder(Path(base_dir))
        return BaseModel(base.name, base.hf_dir, base.source_gguf, path.resolve())
    return _folder(path)


def _folder(path: Path) -> BaseModel:
    if not (path / "config.json").is_file():
        raise ConfigError(f"{path} is not a Hugging Face model folder (no config.json), nor an adapter folder "
                          "(no adapter_config.json)")
    source = None
    if (path / BASE_MARKER).is_file():
        source = Path(json.loads((path / BASE_MARKER).read_text())["source_gguf"])
    return BaseModel(path.name, path.resolve(), source)


def trainable_copy(gguf: Path) -> Path:
    """A plain float32 Hugging Face copy of `gguf` in the cache, written on first use."""
    from tabcoder.backends.weights import cache_home

    gguf = gguf.resolve()
    stat = gguf.stat()
    key = hashlib.sha1(f"{gguf}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:10]
    dest = cache_home() / "hf" / f"{gguf.stem}-{key}"
    if (dest / BASE_MARKER).is_file():
        return dest
    torch = import_torch()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    log.info("writing a trainable copy of %s to %s", gguf, dest)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except Exception as exc:  # transformers raises many types for an architecture it cannot read from GGUF
        raise ConfigError(f"transformers could not load {gguf} ({type(exc).__name__}: {exc}); "
                          "give a Hugging Face model folder instead") from exc
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    del loaded
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / BASE_MARKER).write_text(json.dumps({"source_gguf": str(gguf), "size": stat.st_size,
                                                "written_at": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1))
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():  # a half-written copy from an interrupted run (no marker)
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    log.info("trainable copy written in %.1f s", time.perf_counter() - t0)
    return dest


def load_tokenizer(base: BaseModel) -> Any:
    import_torch()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base.hf_dir)
    if not tokenizer.chat_template:
        raise ConfigError(f"the tokenizer of {base.hf_dir} has no chat template; fine-tune an instruct model")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(base: BaseModel, device: str, dtype: Any, *, adapter: Path | None = None,
               trainable: bool = False) -> Any:
    """The base model on `device`, with `adapter` (or the base's own adapter) applied where given."""
    import_torch()
    from transformers import AutoModelForCausalLM

    try:  # scaled-dot-product attention: measured 3.2x faster and 57% less memory than eager on a CPU step
        model: Any = AutoModelForCausalLM.from_pretrained(base.hf_dir, dtype=dtype, attn_implementation="sdpa")
    except (ValueError, ImportError):  # an architecture without it
        model = AutoModelForCausalLM.from_pretrained(base.hf_dir, dtype=dtype)
    adapter = adapter or base.adapter_dir
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter, is_trainable=trainable)
    return model.to(device)


def peak_memory_mb(device: str) -> float:
    """Peak memory so far: GPU memory allocated by torch on CUDA, else the process's peak RSS."""
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
