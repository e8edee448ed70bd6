"""llama.cpp backends: `local[:<name>]` (packaged weights) and `llamacpp:<path.gguf>` (any GGUF file).

Scope: `LocalBackend`, what both model strings build: a client of the model's own process
(`tabcoder.backends.llama_server`, supervised by `tabcoder.backends.model_process`), so that a native
crash, an abort or an out-of-memory kill of llama.cpp is an `LLMError` that names what happened, not a
dead run. One process per model and settings serves every backend of this process (and of child processes
under `share_servers`). `LlamaCppBackend` is the model in-process, as that server runs it: loading a GGUF
once with llama-cpp-python, chat completions with the GGUF's own chat template, and per-call accounting.

Extra buffer types (llama.cpp's repacked weights for AVX2/AVX-512 and its AMX matmul) are a setting
(`extra_bufts`, or `TABCODER_EXTRA_BUFTS=auto|on|off`): `auto` is off, on every CPU: with Intel AMX
the AMX path crashed with SIGSEGV on the packaged Q4_K_M weights, and on an AVX2 machine they gained
nothing (benchmarks/bench_llm.py --extra-bufts-sweep, docs/local-model.md).

llama-cpp-python keeps the previous call's tokens in its KV cache and re-evaluates only the part of the new
prompt after the longest common prefix. One context serves every client of the model's process, so two runs
that take turns (a bench's cells, a self-training's jobs) would each find the other's tokens there and
evaluate their whole prompt again: `_prompt_states` keeps the KV states of the last few calls
(`TABCODER_PROMPT_STATES`, default 4; 0: off), and llama-cpp-python restores the one with the longest common
prefix before a call. The reuse is observed by wrapping the instance's `eval` (which `Llama.generate` calls
first with exactly the prompt tokens still to evaluate, with `n_tokens` already set to the reused prefix),
giving `cached_prompt_tokens` and `prompt_seconds`. `llama_cpp` is imported only when a backend is built.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabcoder.backends import model_process
from tabcoder.backends.base import (Backend, Completion, GenerationSettings, Messages, ModelStatus, env_int,
                                    register, register_status)
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
LLAMACPP_SETTINGS = ("threads", "n_ctx", "n_batch", "seed", "verbose", "extra_bufts", "llm_timeout")
EXTRA_BUFTS_ENV = "TABCODER_EXTRA_BUFTS"
EXTRA_BUFTS_CHOICES = ("auto", "on", "off")
PROMPT_STATES_ENV = "TABCODER_PROMPT_STATES"
DEFAULT_PROMPT_STATES = 4  # KV states kept for callers that take turns (about 12 KB per token each, 0.5B)
DEFAULT_LOCAL_TIMEOUT = 600.0  # one call: a full 8k-token prompt (~25 tok/s) plus 1,536 tokens at ~10 tok/s


def resolve_extra_bufts(value: str | bool | None = None) -> bool:
    """Whether to load with llama.cpp's extra buffer types: the setting, else TABCODER_EXTRA_BUFTS, else auto."""
    if isinstance(value, bool):
        return value
    choice = (value or os.environ.get(EXTRA_BUFTS_ENV, "") or "auto").strip().lower()
    if choice not in EXTRA_BUFTS_CHOICES:
        raise ConfigError(f"extra buffer types must be one of {', '.join(EXTRA_BUFTS_CHOICES)} (got {choice!r}; "
                          f"from {EXTRA_BUFTS_ENV} or the extra_bufts setting)")
    return choice == "on"  # auto: off (AMX crashed with them; elsewhere they gained nothing, docs/local-model.md)


def import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise BackendError(
            f"llama-cpp-python is not installed (or fails to import: {exc}); fix: {LOCAL_EXTRA_FIX}"
        ) from exc
    return llama_cpp


def require_llama_cpp() -> None:
    """A BackendError naming the extra when llama-cpp-python is missing; checked without loading its native
    library into this process (only the model's own process loads it)."""
    ok, detail = llama_cpp_status()
    if not ok:
        raise BackendError(detail)


def _prompt_states(count: int) -> Any:
    """llama-cpp-python's RAM cache of KV states keyed by tokens, holding at most `count` states (least
    recently used first out). Its own limit counts only the llama.cpp state, not the copy of the logits each
    state also holds (n_batch x vocabulary floats, about 300 MB for the Qwen models): that copy is dropped,
    since a restored state is always followed by the evaluation of at least the prompt's last token, which
    writes the logits that sampling reads."""
    import numpy as np
    from llama_cpp.llama_cache import LlamaRAMCache

    class PromptStates(LlamaRAMCache):
        def __setitem__(self, key: Sequence[int], value: Any) -> None:
            value.scores = np.zeros((1, value.scores.shape[1]), dtype=value.scores.dtype)
            super().__setitem__(key, value)
            while len(self.cache_state) > count:
                self.cache_state.popitem(last=False)

    return PromptStates(capacity_bytes=1 << 62)


@dataclass
class _PromptProbe:
    """Filled by the first `eval` of a call: how much of the prompt was reused, and how long the rest took."""

    cached: int | None = None
    seconds: float | None = None


class LlamaCppBackend(Backend):
    """A GGUF model loaded once with llama-cpp-python, answering chat completions. A final assistant message is
    continued: the prompt is the chat template's rendering of the messages before it (with the generation
    prompt) followed by that message's text."""

    continues_prefill = True

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
        extra_bufts: bool = False,
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
        self.extra_bufts = bool(extra_bufts)
        t0 = time.perf_counter()
        try:
            with _model_params(llama_cpp, use_extra_bufts=self.extra_bufts):
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
        log.info("loaded %s in %.1f s (threads=%d, n_ctx=%d, extra buffer types %s)", model_id, self.load_seconds,
                 self.threads, self.n_ctx, "on" if self.extra_bufts else "off")
        self.prompt_states = env_int(PROMPT_STATES_ENV, DEFAULT_PROMPT_STATES, minimum=0)
        if self.prompt_states > 0:
            self._llm.set_cache(_prompt_states(self.prompt_states))
        self._lock = threading.Lock()  # one llama context: calls are serialised
        self._chat_formatter: Any = None
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

    def _generate(self, messages: Messages, settings: GenerationSettings) -> Completion:
        with self._lock:
            return self._complete(messages, settings)

    def _complete(self, messages: Messages, settings: GenerationSettings) -> Completion:
        if self._llm is None:
            raise LLMError(f"{self.model_id}: backend is closed")
        self._probe = probe = _PromptProbe()
        t0 = time.perf_counter()
        options: dict[str, Any] = dict(temperature=settings.temperature, top_p=settings.top_p,
                                       max_tokens=settings.max_tokens, seed=settings.seed)
        try:
            if messages and messages[-1].get("role") == "assistant":
                out = self._continue(messages, settings, options)
            else:
                out = self._llm.create_chat_completion(
                    messages=messages, stop=list(settings.stop) if settings.stop else None, **options)
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
        text = choice["text"] if "text" in choice else choice["message"].get("content")
        usage = out.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens", 0))
        cached = probe.cached
        if cached is not None:
            cached = min(cached, prompt_tokens)
        return Completion(
            text=text or "",
            prompt_tokens=prompt_tokens,
            completion_tokens=int(usage.get("completion_tokens", 0)),
            seconds=seconds,
            model=self.model_id,
            prompt_seconds=probe.seconds,
            cached_prompt_tokens=cached,
            finish_reason=choice.get("finish_reason"),
        )

    def _continue(self, messages: Messages, settings: GenerationSettings, options: dict[str, Any]) -> Any:
        """A text completion of the chat template's prompt for `messages[:-1]` plus the final (assistant)
        message's text: the reply continues that text. Stops where the template's turn ends."""
        formatter = self._formatter()
        rendered = formatter(messages=messages[:-1])
        stop = list(settings.stop or ()) + [s for s in ([rendered.stop] if isinstance(rendered.stop, str)
                                                       else rendered.stop or []) if s]
        return self._llm.create_completion(prompt=rendered.prompt + messages[-1]["content"], stop=stop or None,
                                           stopping_criteria=rendered.stopping_criteria, **options)

    def _formatter(self) -> Any:
        """The GGUF's chat template as llama-cpp-python renders it for chat completions (built once)."""
        if self._chat_formatter is None:
            template = self._llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise LLMError(f"{self.model_id}: the GGUF has no chat template, so a reply cannot be continued")
            from llama_cpp import llama_chat_format

            eos, bos = self._llm.token_eos(), self._llm.token_bos()
            text = self._llm._model.token_get_text
            self._chat_formatter = llama_chat_format.Jinja2ChatFormatter(
                template=template, eos_token=text(eos) if eos != -1 else "", bos_token=text(bos) if bos != -1 else "",
                stop_token_ids=[eos], add_generation_prompt=True)
        return self._chat_formatter

    def close(self) -> None:
        llm, self._llm = getattr(self, "_llm", None), None
        if llm is not None:
            llm.eval = self._eval  # break the llm -> backend reference cycle
            llm.close()


@contextlib.contextmanager
def _model_params(llama_cpp: Any, *, use_extra_bufts: bool):
    """While a `Llama` is built, its default model parameters carry `use_extra_bufts` (llama-cpp-python
    has no argument for it; `Llama.__init__` starts from `llama_model_default_params()`)."""
    module = llama_cpp.llama.llama_cpp
    original = module.llama_model_default_params

    def params() -> Any:
        value = original()
        if hasattr(value, "use_extra_bufts"):
            value.use_extra_bufts = use_extra_bufts
        return value

    module.llama_model_default_params = params
    try:
        yield
    finally:
        module.llama_model_default_params = original


class LocalBackend(Backend):
    """A GGUF model served by its own process (shared by every backend of the same spec), over HTTP.

    A failed call is an `LLMError`; when the model process is gone, the error says how it ended (crash,
    out-of-memory kill, abort) and what to do, and every later call fails the same way at once."""

    continues_prefill = True  # the process runs a LlamaCppBackend

    def __init__(self, spec: model_process.ServerSpec, *, timeout: float = DEFAULT_LOCAL_TIMEOUT,
                 load_timeout: float = model_process.DEFAULT_LOAD_TIMEOUT,
                 server: model_process.ModelServer | None = None) -> None:
        """`server`: use this process (the caller stops it) instead of the shared one for `spec`."""
        if timeout <= 0:
            raise ConfigError(f"--llm-timeout must be positive (got {timeout})")
        self.spec = spec
        self.model_id = spec.model_id
        self.path = Path(spec.path)
        self.threads, self.n_ctx, self.extra_bufts = spec.threads, spec.n_ctx, spec.extra_bufts
        self.timeout = float(timeout)
        self._shared = server is None
        self._server: model_process.ModelServer | None = (
            model_process.acquire(spec, load_timeout=load_timeout) if server is None else server)
        from tabcoder.backends.openai_backend import OpenAIBackend  # after the local forms in the registry

        self._client = OpenAIBackend(spec.model_id, base_url=self._server.url + "/v1", api_key=self._server.token,
                                     timeout=self.timeout, max_retries=0)
        self._client.model_id = spec.model_id

    @property
    def server(self) -> model_process.ModelServer:
        if self._server is None:
            raise LLMError(f"{self.model_id}: backend is closed")
        return self._server

    def _generate(self, messages: Messages, settings: GenerationSettings) -> Completion:
        """The settings, passed to the model's process as they are."""
        server = self.server
        failure = server.failure()
        if failure is None:
            try:
                return self._client.complete(messages, settings=settings)
            except LLMError:
                time.sleep(0.2)  # a process that just died may still be reaped
                failure = server.failure()
                if failure is None:
                    raise
        raise LLMError(f"{self.model_id}: {failure}")

    def close(self) -> None:
        server, self._server = getattr(self, "_server", None), None
        if server is not None and self._shared:
            model_process.release(server)


def server_spec(path: Path, model_id: str, settings: dict[str, Any]) -> model_process.ServerSpec:
    """How the model process loads `path` for these settings. There is no seed in it: every call passes its
    own, so runs with different seeds share one process."""
    threads = settings.get("threads")
    threads = int(threads) if threads is not None else env_int(THREADS_ENV, DEFAULT_THREADS)
    n_ctx, n_batch = int(settings.get("n_ctx") or DEFAULT_N_CTX), int(settings.get("n_batch") or 512)
    for label, value in (("threads", threads), ("n_ctx", n_ctx), ("n_batch", n_batch)):
        if value < 1:
            raise ConfigError(f"{label} must be >= 1, got {value}")
    return model_process.ServerSpec(path=str(path), model_id=model_id, threads=threads, n_ctx=n_ctx,
                                    n_batch=n_batch, extra_bufts=resolve_extra_bufts(settings.get("extra_bufts")),
                                    verbose=bool(settings.get("verbose", False)))


def local_spec(model: str, settings: dict[str, Any]) -> model_process.ServerSpec | None:
    """The server spec a `local[:name]` / `llamacpp:PATH` model string would use (weights assembled if
    needed); None for other model strings."""
    scheme, _, rest = model.strip().partition(":")
    settings = {k: v for k, v in settings.items() if v is not None}
    if scheme == "local":
        name = rest or DEFAULT_LOCAL_MODEL
        packaged_model(name)
        require_llama_cpp()
        return server_spec(ensure_model(name), f"local:{name}", settings)
    if scheme == "llamacpp" and rest:
        path = Path(rest).expanduser()
        if not path.is_file():
            raise BackendError(f"GGUF file not found: {path} (from model string 'llamacpp:{rest}')")
        require_llama_cpp()
        return server_spec(path.resolve(), f"llamacpp:{path}", settings)
    return None


def _local_backend(model: str, settings: dict[str, Any]) -> LocalBackend:
    spec = local_spec(model, settings)
    assert spec is not None  # registered for the local and llamacpp schemes only
    return LocalBackend(spec, timeout=float(settings.get("llm_timeout") or DEFAULT_LOCAL_TIMEOUT))


@register("local", forms=("local", *(f"local:{name}" for name in CATALOG)), settings=LLAMACPP_SETTINGS)
def _local_factory(rest: str, settings: dict[str, Any]) -> Backend:
    return _local_backend(f"local:{rest}" if rest else "local", settings)


@register("llamacpp", forms=("llamacpp:/path/to/model.gguf",), settings=LLAMACPP_SETTINGS)
def _llamacpp_factory(rest: str, settings: dict[str, Any]) -> Backend:
    if not rest:
        raise BackendError("llamacpp needs a GGUF path: llamacpp:/path/to/model.gguf")
    return _local_backend(f"llamacpp:{rest}", settings)


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
