"""The backend contract and the model-string registry.

Scope: `GenerationSettings` (how a reply is sampled, with the one set of defaults every backend uses),
the `Completion` record, the `Backend` interface every LLM backend implements, `ModelStatus` for
`list_models()`, and the registry that maps a model string's scheme (the part before the first
":") to a factory. Backend modules fill the registry with `@register(...)` at import time; heavy
libraries (llama_cpp, ...) are imported only inside the factories.
"""

from __future__ import annotations

import abc
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from tabcoder.errors import BackendError, ConfigError

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]


@dataclass
class Completion:
    """One model reply plus what it cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float  # wall time of the call
    model: str  # model id, e.g. "local:qwen2.5-coder-1.5b"
    prompt_seconds: float | None = None  # prompt processing time, where the backend can tell
    cached_prompt_tokens: int | None = None  # prompt tokens reused from a KV/prefix cache, where known
    finish_reason: str | None = None  # "stop" | "length" | ...


@dataclass(frozen=True)
class GenerationSettings:
    """How one reply is sampled: the options of `Backend.complete`, and the only place their defaults live.

    `seed` None leaves the seed to the backend; `stop` is kept as a tuple (a list is converted, a single
    string becomes a one-item tuple)."""

    temperature: float = 0.2
    top_p: float = 0.95
    max_tokens: int = 1024
    seed: int | None = None
    stop: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        stop = self.stop
        if stop is not None and not isinstance(stop, tuple):
            object.__setattr__(self, "stop", (stop,) if isinstance(stop, str) else tuple(stop))

    @classmethod
    def of(cls, settings: GenerationSettings | None = None, /, **options: Any) -> GenerationSettings:
        """`settings` (default: the defaults) with the keyword `options` replacing single fields; an
        option that is not a field is a TypeError that names the known ones."""
        unknown = sorted(set(options) - set(GENERATION_OPTIONS))
        if unknown:
            raise TypeError(f"unknown generation option(s) {', '.join(unknown)}; "
                            f"known: {', '.join(GENERATION_OPTIONS)}")
        base = cls() if settings is None else settings
        return replace(base, **options) if options else base

    def options(self) -> dict[str, Any]:
        """The settings as keyword options, `stop` as a list (or None): what a call was asked for."""
        values = asdict(self)
        values["stop"] = None if self.stop is None else list(self.stop)
        return values


GENERATION_OPTIONS: tuple[str, ...] = tuple(f.name for f in fields(GenerationSettings))


class Backend(abc.ABC):
    """A chat model. Implementations raise `LLMError` when a call fails after their retries.

    Callers use `complete`; a backend implements `_generate`, which receives the settings resolved.

    A backend whose `continues_prefill` is True also takes `messages` that end with an assistant message: the
    start of the reply, written by the caller (a prefill). It continues that message, and the completion's text
    is the continuation only. Other backends must not be given one (`ModelCaller` checks the flag)."""

    model_id: str
    continues_prefill: bool = False

    def complete(self, messages: Messages, *, settings: GenerationSettings | None = None,
                 **options: Any) -> Completion:
        """One reply to `messages`, sampled with `settings` (default: `GenerationSettings()`) and any keyword
        options (temperature=..., top_p=..., max_tokens=..., seed=..., stop=...) over it. An unknown option
        is a TypeError."""
        return self._generate(messages, GenerationSettings.of(settings, **options))

    @abc.abstractmethod
    def _generate(self, messages: Messages, settings: GenerationSettings) -> Completion: ...

    def close(self) -> None:  # noqa: B027 - a no-op unless the backend holds resources
        """Release resources (model memory, connections). Safe to call twice."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class ModelStatus:
    """One line of `list_models()`: whether `name` can be used here, and if not, the fix."""

    name: str
    usable: bool
    detail: str


Factory = Callable[[str, dict[str, Any]], Backend]
StatusProvider = Callable[[], Iterable[ModelStatus]]


@dataclass(frozen=True)
class _Scheme:
    factory: Factory
    forms: tuple[str, ...]
    settings: frozenset[str]


_SCHEMES: dict[str, _Scheme] = {}
_STATUS_PROVIDERS: list[StatusProvider] = []


def register(scheme: str, *, forms: Iterable[str], settings: Iterable[str] = ()) -> Callable[[Factory], Factory]:
    """Register `factory(rest, settings)` for model strings `"<scheme>"` / `"<scheme>:<rest>"`.

    `forms` are the model-string forms shown in error messages; `settings` are the keyword settings
    the factory understands (others known to some backend are ignored, unknown ones are an error).
    """

    def deco(factory: Factory) -> Factory:
        _SCHEMES[scheme] = _Scheme(factory, tuple(forms), frozenset(settings))
        return factory

    return deco


def register_status(provider: StatusProvider) -> StatusProvider:
    """Register a function contributing lines to `list_models()`."""
    _STATUS_PROVIDERS.append(provider)
    return provider


def valid_forms() -> list[str]:
    return [form for scheme in _SCHEMES.values() for form in scheme.forms]


def get_backend(model: str, **settings: Any) -> Backend:
    """Build the backend for `model` ("local", "local:<name>", "llamacpp:<path>", "openai:<model>", ...).

    Settings whose value is None count as not given. A setting that some other backend understands
    is ignored (so a CLI can pass one settings dict for every model); an unknown one is a ConfigError.
    """
    scheme_name, _, rest = model.strip().partition(":")
    scheme = _SCHEMES.get(scheme_name)
    if scheme is None:
        raise BackendError(
            f"unknown model {model!r}; valid forms: " + ", ".join(valid_forms())
        )
    given = {k: v for k, v in settings.items() if v is not None}
    known_anywhere = frozenset().union(*(s.settings for s in _SCHEMES.values()))
    unknown = sorted(set(given) - known_anywhere)
    if unknown:
        raise ConfigError(
            f"unknown backend setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known_anywhere))}"
        )
    ignored = sorted(set(given) - scheme.settings)
    if ignored:
        log.debug("model %s ignores setting(s) %s", model, ", ".join(ignored))
    return scheme.factory(rest, {k: v for k, v in given.items() if k in scheme.settings})


def list_models() -> list[ModelStatus]:
    """Every model string form this install knows, whether it is usable here, and the fix if not."""
    out: list[ModelStatus] = []
    for provider in _STATUS_PROVIDERS:
        out.extend(provider())
    return out


def env_int(name: str, default: int, *, minimum: int = 1) -> int:
    """An integer from the environment (e.g. TABCODER_THREADS), or `default` when unset/empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} must be >= {minimum}")
    return value
