"""llama.cpp backends: `local[:<name>]` (packaged weights) and `llamacpp:<path.gguf>` (any GGUF file).

Scope: loading a GGUF once with llama-cpp-python, chat completions with the GGUF's own chat
template, and per-call accounting. llama-cpp-python keeps the previous call's tokens in its KV cache
and re-evaluates only the part of the new prompt after the longest common prefix; we observe this by
wrapping the instance's `eval` (which `Llama.generate` calls first with exactly the prompt tokens
still to evaluate, with `n_tokens` already set to the reused prefix), giving `cached_prompt_tokens`
and `prompt_seconds`. `llama_cpp` is imported only when a backend is built.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabcoder.backends.base import Backend, Completion, Messages, ModelStatus, env_int, register, register_status
from tabcoder.backends.weights import (
    CATALOG,
    DEFAULT_LOCAL_MODEL,
    LOCAL_EXTRA_FIX,
    ModelStore,
    ensure_model,
    packaged_model,
)
from tabcoder.errors import BackendError, ConfigError, LLMError

log = logging.getLogger(__name__)

THREADS_ENV = "TABCODER_THREADS"
DEFAULT_THREADS = 1  # measured: on a 2-vCPU box one thread generates faster than two
DEFAULT_N_CTX = 8192
LLAMACPP_SETTINGS = ("threads", "n_ctx", "n_batch", "seed", "verbose")


def import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise BackendError(
            f"llama-cpp-python is not installed (or fails to import: {exc}); fix: {LOCAL_EXTRA_FIX}"
        ) from exc
    return llama_cpp


@dataclass
class _PromptProbe:
    """Filled by the first `eval` of a call: how much of the prompt was reused, and how long the rest took."""

    cached: int | None = None
    seconds: float | None = None


class LlamaCppBackend(Backend):
    """A GGUF model loaded once with llama-cpp-python, answering chat completions."""

    def __init__(
        self,
        path: str | Path,
        *,
        model_id: str,
        threads: int | None = None,
        n_ctx: int = DEFAULT_N_CTX,
        n_batch: int = 512,
        seed: int = 0,
        verbose: bool = False,
    ) -> None:
        path = Path(path)
        if not path.is_file():
            raise BackendError(f"GGUF file not found: {path}")
        threads = threads if threads is not None else env_int(THREADS_ENV, DEFAULT_THREADS)
        for label, value in (("threads", threads), ("n_ctx", n_ctx), ("n_batch", n_batch)):
            if int(value) < 1:
                raise ConfigError(f"{label} must be >= 1, got {value}")
        llama_cpp = import_llama_cpp()
        self.model_id = model_id
        self.path = path
        self.threads = int(threads)
        self.n_ctx = int(n_ctx)
        t0 = time.perf_counter()
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=self.n_ctx,
                n_batch=int(n_batch),
                n_threads=self.threads,
                n_threads_batch=self.threads,
                seed=int(seed),
                verbose=verbose,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise BackendError(f"llama.cpp could not load {path}: {exc}") from exc
        self.load_seconds = time.perf_counter() - t0
        if "tokenizer.chat_template" not in self._llm.metadata:
            log.warning("%s has no chat template; llama-cpp-python falls back to %s", path, self._llm.chat_format)
        log.info("loaded %s in %.1f s (threads=%d, n_ctx=%d)", model_id, self.load_seconds, self.threads, self.n_ctx)
        self._lock = threading.Lock()  # one llama context: calls are serialised
        self._probe: _PromptProbe | None = None
        self._eval = self._llm.eval
        self._llm.eval = self._probing_eval  # instance attribute shadows Llama.eval for Llama.generate

    def _probing_eval(self, tokens: Sequence[int]) -> None:
        probe = self._probe
        if probe is None or probe.seconds is not None:
            return self._eval(tokens)
        probe.cached = int(self._llm.n_tokens)
        t0 = time.perf_counter()
        try:
            return self._eval(tokens)
        finally:
            probe.seconds = time.perf_counter() - t0

    def complete(
        self,
        messages: Messages,
        *,
        temperature: float = 0.2,
        top_p: float = 0.95,
        max_tokens: int = 1024,
        seed: int | None = None,
        stop: list[str] | None = None,
    ) -> Completion:
        with self._lock:
            return self._complete(messages, temperature, top_p, max_tokens, seed, stop)

    def _complete(
        self,
        messages: Messages,
        temperature: float,
        top_p: float,
        max_tokens: int,
        seed: int | None,
        stop: list[str] | None,
    ) -> Completion:
        if self._llm is None:
            raise LLMError(f"{self.model_id}: backend is closed")
        self._probe = probe = _PromptProbe()
        t0 = time.perf_counter()
        try:
            out = self._llm.create_chat_completion(
                messages=messages,
                temperature=temperature,
                top_p=top_p,
                max_tokens=max_tokens,
                seed=seed,
                stop=stop or None,
            )
        except ValueError as exc:
            if "exceed context window" in str(exc):
                raise LLMError(
                    f"{self.model_id}: prompt does not fit the context window ({exc}; n_ctx={self.n_ctx}); "
                    f"raise --n-ctx or shorten the task description"
                ) from exc
            raise LLMError(f"{self.model_id}: llama.cpp failed: {exc}") from exc
        except RuntimeError as exc:  # llama_decode failures
            raise LLMError(f"{self.model_id}: llama.cpp failed: {exc} (n_ctx={self.n_ctx})") from exc
        finally:
            self._probe = None
        seconds = time.perf_counter() - t0
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens", 0))
        cached = probe.cached
        if cached is not None:
            cached = min(cached, prompt_tokens)
        return Completion(
            text=choice["message"].get("content") or "",
            prompt_tokens=prompt_tokens,
            completion_tokens=int(usage.get("completion_tokens", 0)),
            seconds=seconds,
            model=self.model_id,
            prompt_seconds=probe.seconds,
            cached_prompt_tokens=cached,
            finish_reason=choice.get("finish_reason"),
        )

    def close(self) -> None:
        llm, self._llm = getattr(self, "_llm", None), None
        if llm is not None:
            llm.eval = self._eval  # break the llm -> backend reference cycle
            llm.close()


def _llamacpp_kwargs(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: settings[k] for k in LLAMACPP_SETTINGS if k in settings}


@register("local", forms=("local", *(f"local:{name}" for name in CATALOG)), settings=LLAMACPP_SETTINGS)
def _local_factory(rest: str, settings: dict[str, Any]) -> Backend:
    name = rest or DEFAULT_LOCAL_MODEL
    packaged_model(name)  # unknown name -> BackendError before anything heavy
    import_llama_cpp()  # missing extra -> BackendError before assembling a 1 GB file
    path = ensure_model(name)
    return LlamaCppBackend(path, model_id=f"local:{name}", **_llamacpp_kwargs(settings))


@register("llamacpp", forms=("llamacpp:/path/to/model.gguf",), settings=LLAMACPP_SETTINGS)
def _llamacpp_factory(rest: str, settings: dict[str, Any]) -> Backend:
    if not rest:
        raise BackendError("llamacpp needs a GGUF path: llamacpp:/path/to/model.gguf")
    path = Path(rest).expanduser()
    if not path.is_file():
        raise BackendError(f"GGUF file not found: {path} (from model string 'llamacpp:{rest}')")
    return LlamaCppBackend(path, model_id=f"llamacpp:{path}", **_llamacpp_kwargs(settings))


def llama_cpp_status() -> tuple[bool, str]:
    """Whether llama-cpp-python is installed (checked without importing it), and its version."""
    if importlib.util.find_spec("llama_cpp") is None:
        return False, f"llama-cpp-python not installed; fix: {LOCAL_EXTRA_FIX}"
    try:
        from importlib.metadata import version

        return True, f"llama-cpp-python {version('llama-cpp-python')}"
    except Exception:  # noqa: BLE001 - metadata is informational only
        return True, "llama-cpp-python installed"


@register_status
def _local_statuses() -> list[ModelStatus]:
    runtime_ok, runtime = llama_cpp_status()
    store = ModelStore()
    out = []
    for name, model in CATALOG.items():
        state = store.state(model)
        default = "default; " if name == DEFAULT_LOCAL_MODEL else ""
        if state.verified:
            weights = f"verified at {state.path}"
        elif state.missing:
            shown = ", ".join(p.dist for p in state.missing[:3]) + (" ..." if len(state.missing) > 3 else "")
            weights = f"weights not installed (missing {shown}); fix: {model.install_fix}"
        elif state.assembled:
            weights = f"at {state.path}, verified on first use"
        else:
            weights = f"installed, assembled into {state.path} on first use"
        usable = runtime_ok and state.available
        detail = default + (weights if runtime_ok else f"{weights}; {runtime}")
        out.append(ModelStatus(f"local:{name}", usable, detail))
    out.append(ModelStatus("llamacpp:/path/to/model.gguf", runtime_ok, runtime))
    return out
