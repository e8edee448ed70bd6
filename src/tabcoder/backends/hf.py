"""The `hf:` backend: a Hugging Face transformers model, optionally with a LoRA adapter.

Model strings: `hf:PATH` where PATH is a Hugging Face model folder, a `.gguf` file (used through its
trainable copy, see `sft.model`), or the output / adapter folder of `tabcoder sft train` (its base is
found from the adapter); `hf:BASE,adapter=ADAPTER` names both. The chat is formatted with the model's own
chat template; temperature 0 is greedy decoding. Runs on a CUDA GPU in bfloat16 where there is one, else
on the CPU in float32 with `threads` threads. torch is imported only when a backend is built.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from pathlib import Path
from typing import Any

from tabcoder.backends.base import (Backend, Completion, GenerationSettings, Messages, ModelStatus, env_int,
                                    register, register_status)
from tabcoder.backends.llamacpp import DEFAULT_THREADS, THREADS_ENV
from tabcoder.errors import BackendError, ConfigError, LLMError

log = logging.getLogger(__name__)

HF_SETTINGS = ("threads", "seed")


def parse_spec(rest: str) -> tuple[str, str | None]:
    """`PATH[,adapter=PATH]` -> (path, adapter)."""
    path, *options = [part.strip() for part in rest.split(",")]
    adapter = None
    for option in options:
        key, sep, value = option.partition("=")
        if key != "adapter" or not sep or not value:
            raise BackendError(f"hf model option {option!r} is not understood; the form is hf:PATH[,adapter=PATH]")
        adapter = value
    if not path:
        raise BackendError("hf needs a model: hf:PATH[,adapter=PATH]")
    return path, adapter


class HFBackend(Backend):
    """A transformers causal LM loaded once, answering chat completions with its chat template (a final
    assistant message is continued)."""

    continues_prefill = True

    def __init__(self, path: str, adapter: str | None = None, *, threads: int | None = None, seed: int = 0) -> None:
        from tabcoder.sft.model import import_torch, load_model, load_tokenizer, pick_device, resolve_base

        try:
            torch = import_torch()
        except ConfigError as exc:
            raise BackendError(str(exc)) from exc
        self._torch = torch
        self.threads = threads if threads is not None else env_int(THREADS_ENV, DEFAULT_THREADS)
        torch.set_num_threads(self.threads)
        self.model_id = f"hf:{path}" + (f",adapter={adapter}" if adapter else "")
        self.seed = seed
        base = resolve_base(path)
        adapter_dir = Path(adapter).expanduser() if adapter else None
        if adapter_dir is not None and not (adapter_dir / "adapter_config.json").is_file():
            raise BackendError(f"adapter folder {adapter_dir} has no adapter_config.json")
        self.device, dtype = pick_device("auto")
        t0 = time.perf_counter()
        self._tokenizer = load_tokenizer(base)
        self._model = load_model(base, self.device, dtype, adapter=adapter_dir)
        self._model.eval()
        self.load_seconds = time.perf_counter() - t0
        self._lock = threading.Lock()
        log.info("loaded %s on %s in %.1f s", self.model_id, self.device, self.load_seconds)

    def _generate(self, messages: Messages, settings: GenerationSettings) -> Completion:
        if self._model is None:
            raise LLMError("the backend is closed")
        torch = self._torch
        with self._lock:
            t0 = time.perf_counter()
            if messages and messages[-1].get("role") == "assistant":  # a prefill: continue that message
                prompt = self._tokenizer.apply_chat_template(messages, continue_final_message=True, tokenize=False)
            else:
                prompt = self._tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            ids = self._tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"].to(self.device)
            sampling: dict[str, Any] = {"do_sample": False}
            if settings.temperature > 0:
                torch.manual_seed(self.seed if settings.seed is None else settings.seed)
                sampling = {"do_sample": True, "temperature": settings.temperature, "top_p": settings.top_p}
            with torch.no_grad():
                out = self._model.generate(ids, attention_mask=torch.ones_like(ids),
                                           max_new_tokens=settings.max_tokens,
                                           pad_token_id=self._tokenizer.pad_token_id, **sampling)
            new = out[0, ids.shape[1]:]
            text = self._tokenizer.decode(new, skip_special_tokens=True)
            finish = "length" if len(new) >= settings.max_tokens else "stop"
            for marker in settings.stop or ():
                cut = text.find(marker)
                if cut >= 0:
                    text, finish = text[:cut], "stop"
            return Completion(text=text, prompt_tokens=int(ids.shape[1]), completion_tokens=int(len(new)),
                              seconds=time.perf_counter() - t0, model=self.model_id, finish_reason=finish)

    def close(self) -> None:
        self._model = None


@register("hf", forms=("hf:PATH[,adapter=PATH]",), settings=HF_SETTINGS)
def _hf_factory(rest: str, settings: dict[str, Any]) -> Backend:
    path, adapter = parse_spec(rest)
    try:
        return HFBackend(path, adapter, threads=settings.get("threads"), seed=int(settings.get("seed", 0)))
    except ConfigError as exc:
        raise BackendError(str(exc)) from exc


@register_status
def _hf_status() -> list[ModelStatus]:
    missing = [name for name in ("torch", "transformers", "peft") if importlib.util.find_spec(name) is None]
    if missing:
        return [ModelStatus("hf:PATH[,adapter=PATH]", False,
                            f"{', '.join(missing)} not installed; fix: pip install 'tabcoder[sft]'")]
    return [ModelStatus("hf:PATH[,adapter=PATH]", True, "transformers (a model folder, a .gguf, or a fine-tuned adapter)")]
