"""Backend contract tests (scripted, replay, openai on a fake server, llama.cpp on a tiny model), registry errors."""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tabcoder.backends import Backend, Completion, GenerationSettings, ScriptedBackend, get_backend, list_models
from tabcoder.backends.openai_backend import OpenAIBackend
from tabcoder.errors import BackendError, ConfigError, LLMError

HAS_LLAMA = importlib.util.find_spec("llama_cpp") is not None
needs_llama = pytest.mark.skipif(not HAS_LLAMA, reason="llama-cpp-python not installed (pip install 'tabcoder[local]')")

MESSAGES = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Say hello in one word."},
]


def fast_openai(server: Any, **kw: Any) -> OpenAIBackend:
    kw.setdefault("timeout", 5)
    return OpenAIBackend("fake-model", base_url=server.base_url, api_key="k", backoff_base=0.01, **kw)


# --------------------------------------------------------------------------- contract, over every backend

# A factory gets (tmp_path, fake server, texts) and returns a backend that will answer `texts` in order,
# or None when it cannot script its answers (a real model).
Factory = Callable[[Path, Any, list[str]], Backend]


def _scripted(tmp: Path, server: Any, texts: list[str]) -> Backend:
    return ScriptedBackend(texts)


def _replay(tmp: Path, server: Any, texts: list[str]) -> Backend:
    path = tmp / "rec.jsonl"
    lines = [json.dumps({"text": t, "prompt_tokens": 3, "completion_tokens": 2, "seconds": 0.5}) for t in texts]
    path.write_text("\n".join(lines) + "\n")
    return get_backend(f"replay:{path}")


def _openai(tmp: Path, server: Any, texts: list[str]) -> Backend:
    for t in texts:
        reply = server.default_reply({"model": "m"})
        reply["choices"][0]["message"]["content"] = t
        server.reply("ok", reply)
    return get_backend("openai:m", base_url=server.base_url, llm_timeout=5)


SCRIPTABLE = [
    pytest.param(_scripted, id="scripted"),
    pytest.param(_replay, id="replay"),
    pytest.param(_openai, id="openai"),
]


@pytest.mark.parametrize("factory", SCRIPTABLE)
def test_contract_scriptable(factory: Factory, tmp_path: Path, fake_openai: Any) -> None:
    backend = factory(tmp_path, fake_openai, ["first answer", "second"])
    with backend:
        assert isinstance(backend.model_id, str) and backend.model_id
        a = backend.complete(MESSAGES, temperature=0.0, max_tokens=16, seed=1, stop=["\n\n"])
        b = backend.complete(MESSAGES)
    for c, text in ((a, "first answer"), (b, "second")):
        assert isinstance(c, Completion)
        assert c.text == text
        assert c.prompt_tokens > 0 and c.completion_tokens > 0
        assert c.seconds >= 0
        assert c.model
        assert c.finish_reason == "stop"
    backend.close()  # twice is fine


@needs_llama
@pytest.mark.slow
def test_contract_llamacpp_tiny_model() -> None:
    with get_backend("local:smollm2-135m", threads=1, n_ctx=2048) as backend:
        assert backend.model_id == "local:smollm2-135m"
        a = backend.complete(MESSAGES, temperature=0.0, max_tokens=12, seed=3)
        b = backend.complete(MESSAGES, temperature=0.0, max_tokens=12, seed=3)
        assert a.text == b.text and a.text.strip()
        for c in (a, b):
            assert c.prompt_tokens > 0 and c.completion_tokens > 0 and c.seconds > 0
            assert c.finish_reason in ("stop", "length")
            assert c.prompt_seconds is not None and c.prompt_seconds >= 0
        assert a.cached_prompt_tokens == 0
        # Same prompt again: all but (at most) the last prompt token come from the KV cache.
        assert b.cached_prompt_tokens is not None and b.cached_prompt_tokens >= b.prompt_tokens - 1

        other = [MESSAGES[0], {"role": "user", "content": "Name a colour."}]
        c = backend.complete(other, temperature=0.0, max_tokens=4, stop=["."])
        assert 0 < c.cached_prompt_tokens < c.prompt_tokens  # the shared system prefix is reused


@needs_llama
@pytest.mark.slow
def test_a_final_assistant_message_is_continued_through_the_model_process() -> None:
    """A prefill: the reply continues the given start (greedy sampling gives the same tokens as the plain
    reply's continuation of that start), the text is the continuation only, and the prompt up to the start of
    the reply comes from the KV cache of the plain call."""
    with get_backend("local:smollm2-135m", threads=1, n_ctx=2048) as backend:
        assert backend.continues_prefill
        plain = backend.complete(MESSAGES, temperature=0.0, max_tokens=16, seed=1)
        words = plain.text.split(" ")
        assert len(words) > 3, plain.text
        start = " ".join(words[:2])  # ends on a word, so the start tokenises as the plain reply's tokens did
        rest = backend.complete([*MESSAGES, {"role": "assistant", "content": start}], temperature=0.0,
                                max_tokens=8, seed=1)
        assert rest.text and not rest.text.startswith(start)
        assert (start + rest.text).startswith(plain.text[:len(start) + 4].rstrip())
        assert rest.cached_prompt_tokens is not None and rest.cached_prompt_tokens >= plain.prompt_tokens - 1


@needs_llama
@pytest.mark.slow
def test_two_conversations_that_take_turns_each_reuse_their_own_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    """One context, two callers alternating (as two runs sharing a model process do): with the kept KV
    states each caller's next prompt reuses its own earlier tokens, not only the shared system prompt, and the
    replies are the same as without them."""
    from tabcoder.backends.llamacpp import LlamaCppBackend
    from tabcoder.backends.weights import ensure_model

    gguf = ensure_model("smollm2-135m")
    tasks = {name: " ".join(f"Column {name}{i} holds the {topic} of row {i}." for i in range(60))
             for name, topic in (("a", "price"), ("b", "colour"))}

    def turns(states: str) -> list[Completion]:
        monkeypatch.setenv("TABCODER_PROMPT_STATES", states)
        backend = LlamaCppBackend(gguf, model_id="tiny", threads=1, n_ctx=2048)
        try:
            replies = []
            for step in range(2):
                for name in ("a", "b"):
                    messages = [MESSAGES[0], {"role": "user", "content": f"{tasks[name]}\nStep {step}: name one column."}]
                    replies.append(backend.complete(messages, temperature=0.0, max_tokens=8, seed=step))
            return replies
        finally:
            backend.close()

    kept, none = turns("4"), turns("0")
    assert [r.text for r in kept] == [r.text for r in none]
    for second, first in ((kept[2], kept[0]), (kept[3], kept[1])):  # step 1 of a, of b
        assert second.cached_prompt_tokens is not None and second.cached_prompt_tokens > 0.9 * first.prompt_tokens
    assert all(r.cached_prompt_tokens is not None and r.cached_prompt_tokens < 0.2 * r.prompt_tokens
               for r in none[2:]), "without kept states only the system prompt is shared"
    monkeypatch.setenv("TABCODER_PROMPT_STATES", "-1")
    with pytest.raises(ConfigError, match="TABCODER_PROMPT_STATES"):
        LlamaCppBackend(gguf, model_id="tiny", threads=1, n_ctx=2048)


@needs_llama
@pytest.mark.slow
def test_llamacpp_context_overflow_is_llm_error() -> None:
    with get_backend("local:smollm2-135m", n_ctx=256) as backend:
        long = [{"role": "user", "content": "word " * 400}]
        with pytest.raises(LLMError, match="n-ctx"):
            backend.complete(long, max_tokens=8)
        assert backend.complete(MESSAGES, max_tokens=4).completion_tokens > 0  # still usable


@needs_llama
def test_llamacpp_path_form(tmp_path: Path) -> None:
    from tabcoder.backends.weights import ensure_model

    gguf = ensure_model("smollm2-135m")
    with get_backend(f"llamacpp:{gguf}") as backend:
        assert backend.model_id == f"llamacpp:{gguf}"
        assert backend.threads == 1


@needs_llama
def test_threads_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TABCODER_THREADS", "2")
    with get_backend("local:smollm2-135m") as backend:
        assert backend.threads == 2
    with get_backend("local:smollm2-135m", threads=1) as backend:
        assert backend.threads == 1
    monkeypatch.setenv("TABCODER_THREADS", "many")
    with pytest.raises(ConfigError, match="TABCODER_THREADS"):
        get_backend("local:smollm2-135m")


# --------------------------------------------------------------------------- openai specifics


def test_openai_request_and_usage(fake_openai: Any) -> None:
    c = fast_openai(fake_openai).complete(MESSAGES, temperature=0.0, top_p=0.9, max_tokens=7, seed=5, stop=["X"])
    assert (c.text, c.prompt_tokens, c.completion_tokens, c.cached_prompt_tokens) == ("hello", 17, 1, 5)
    assert c.model == "openai:fake-model"
    path, headers, body = fake_openai.requests[0]
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == "Bearer k"
    assert body == {"model": "fake-model", "messages": MESSAGES, "temperature": 0.0, "top_p": 0.9,
                    "max_tokens": 7, "seed": 5, "stop": ["X"]}


def test_openai_retries_5xx_and_429(fake_openai: Any) -> None:
    fake_openai.reply("status", 500)
    fake_openai.reply("status", 429)
    c = fast_openai(fake_openai).complete(MESSAGES)
    assert c.text == "hello"
    assert len(fake_openai.requests) == 3


def test_openai_4xx_is_not_retried(fake_openai: Any) -> None:
    fake_openai.reply("status", 400)
    with pytest.raises(LLMError, match="HTTP 400.*fake error 400"):
        fast_openai(fake_openai).complete(MESSAGES)
    assert len(fake_openai.requests) == 1


def test_openai_gives_up_after_max_retries(fake_openai: Any) -> None:
    for _ in range(5):
        fake_openai.reply("status", 503)
    with pytest.raises(LLMError, match="after 3 attempt"):
        fast_openai(fake_openai, max_retries=2).complete(MESSAGES)
    assert len(fake_openai.requests) == 3


def test_openai_timeout_ends_the_call_at_the_limit_without_retries(fake_openai: Any) -> None:
    fake_openai.always("hang", 30)
    t0 = time.perf_counter()
    with pytest.raises(LLMError, match=r"no answer .* within 0.3 s \(--llm-timeout\)"):
        fast_openai(fake_openai, timeout=0.3, max_retries=3).complete(MESSAGES)
    assert time.perf_counter() - t0 < 2  # a hang costs the limit once, not once per retry
    assert len(fake_openai.requests) == 1


def test_openai_retry_after_is_honoured(fake_openai: Any) -> None:
    fake_openai.reply("status", (429, {"Retry-After": "0.5"}))
    waits: list[float] = []
    backend = fast_openai(fake_openai, sleep=waits.append)
    assert backend.complete(MESSAGES).text == "hello"
    assert waits == [0.5]


def test_openai_invalid_and_truncated_bodies_are_retried_then_clear_errors(fake_openai: Any) -> None:
    fake_openai.reply("raw", b"<html>bad gateway</html>")
    fake_openai.reply("truncated")
    assert fast_openai(fake_openai).complete(MESSAGES).text == "hello"
    assert len(fake_openai.requests) == 3
    fake_openai.always("raw", b"{not json")
    with pytest.raises(LLMError, match="not valid JSON"):
        fast_openai(fake_openai, max_retries=1).complete(MESSAGES)


@pytest.mark.parametrize("content, text", [
    ([{"type": "text", "text": "print("}, {"type": "image_url", "image_url": {}}, {"type": "text", "text": "1)"}],
     "print(1)"),
    (None, ""),
    ("plain", "plain"),
])
def test_openai_reads_content_as_text_or_parts(fake_openai: Any, content: Any, text: str) -> None:
    reply = fake_openai.default_reply({})
    reply["choices"][0]["message"]["content"] = content
    fake_openai.reply("ok", reply)
    assert fast_openai(fake_openai).complete(MESSAGES).text == text


def test_openai_reads_string_and_missing_usage_and_llama_cpp_timings(fake_openai: Any) -> None:
    reply = fake_openai.default_reply({})
    reply["usage"] = {"prompt_tokens": "40", "completion_tokens": "7", "prompt_tokens_details": {"cached_tokens": "30"}}
    reply["timings"] = {"prompt_n": 10, "prompt_ms": 250.0}
    fake_openai.reply("ok", reply)
    c = fast_openai(fake_openai).complete(MESSAGES)
    assert (c.prompt_tokens, c.completion_tokens, c.cached_prompt_tokens, c.prompt_seconds) == (40, 7, 30, 0.25)
    reply = fake_openai.default_reply({})
    reply["usage"] = {"prompt_tokens": "many", "completion_tokens": -3}
    fake_openai.reply("ok", reply)
    c = fast_openai(fake_openai).complete(MESSAGES)
    assert c.prompt_tokens > 0 and c.completion_tokens == len("hello") // 4  # estimated, not a crash


@pytest.mark.parametrize("reply, match", [
    ({"choices": []}, "no choices"),
    ({"object": "chat.completion"}, "no choices"),
    ({"choices": [{"index": 0}]}, "has no message"),
    ({"choices": ["text"]}, "has no message"),
    ({"choices": [{"message": {"content": 42}}]}, "neither text nor a list"),
    ({"error": {"message": "model overloaded"}}, "answered an error: .*model overloaded"),
])
def test_openai_illegal_replies_are_clear_errors(fake_openai: Any, reply: dict, match: str) -> None:
    fake_openai.reply("ok", reply)
    with pytest.raises(LLMError, match=match):
        fast_openai(fake_openai).complete(MESSAGES)
    fake_openai.reply("raw", b"[1, 2]")
    with pytest.raises(LLMError, match="not an object"):
        fast_openai(fake_openai).complete(MESSAGES)


def test_openai_connection_refused_is_llm_error() -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as s:
        port = s.server_address[1]  # bound, then closed: nothing listens there afterwards
    backend = OpenAIBackend("m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=1, backoff_base=0.01, timeout=2)
    with pytest.raises(LLMError, match="cannot connect"):
        backend.complete(MESSAGES)


def test_openai_without_usage_estimates_tokens(fake_openai: Any) -> None:
    reply = fake_openai.default_reply({"model": "m"})
    del reply["usage"]
    fake_openai.reply("ok", reply)
    c = fast_openai(fake_openai).complete(MESSAGES)
    assert c.prompt_tokens > 0 and c.cached_prompt_tokens is None


def test_openai_key_and_base_url_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(BackendError, match="OPENAI_API_KEY.*--base-url"):
        get_backend("openai:gpt-4o-mini")
    local = get_backend("openai:qwen", base_url="http://127.0.0.1:9/v1")
    assert local.url == "http://127.0.0.1:9/v1/chat/completions" and local._api_key  # dummy key
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    remote = get_backend("openai:gpt-4o-mini", llm_timeout=10, max_retries=0)
    assert remote.url == "https://api.openai.com/v1/chat/completions"
    assert (remote._api_key, remote.timeout, remote.max_retries) == ("sk-test", 10.0, 0)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:8000/v1/")
    assert get_backend("openai:x").url == "http://localhost:8000/v1/chat/completions"
    with pytest.raises(BackendError, match="openai:<model>"):
        get_backend("openai")


# --------------------------------------------------------------------------- replay and scripted


def test_replay_reads_journal_lines_and_reports_exhaustion(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    lines = [
        {"event": "start", "task": "x"},
        {"event": "llm", "completion": {"text": "one", "prompt_tokens": 10, "completion_tokens": 1, "seconds": 2.0,
                                        "model": "local:qwen2.5-coder-1.5b", "finish_reason": "length"}},
        {"event": "graded", "score": 0.5},
        {"text": "two"},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    backend = get_backend(f"replay:{path}")
    one = backend.complete(MESSAGES)
    assert (one.text, one.prompt_tokens, one.seconds, one.model, one.finish_reason) == (
        "one", 10, 2.0, "local:qwen2.5-coder-1.5b", "length")
    two = backend.complete(MESSAGES)
    assert two.text == "two" and two.completion_tokens == 1 and two.prompt_tokens > 0
    with pytest.raises(LLMError, match="recorded 2 response"):
        backend.complete(MESSAGES)


def test_replay_errors(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="not found"):
        get_backend(f"replay:{tmp_path / 'missing.jsonl'}")
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps({"event": "start"}) + "\n")
    with pytest.raises(BackendError, match="no responses"):
        get_backend(f"replay:{empty}")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{oops\n{"text": "b"}\n')
    with pytest.raises(BackendError, match="line 2"):
        get_backend(f"replay:{bad}")
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_text('{"text": "a"}\n{"text": "b')  # interrupted writer: last line skipped
    assert get_backend(f"replay:{truncated}").remaining == 1


def test_replay_of_a_run_journal(tmp_path: Path) -> None:
    from tabcoder.journal import Attempt, Journal, LLMCall

    journal = Journal(tmp_path / "journal.jsonl")
    first = Attempt(index=1, parent=None, kind="draft", messages=MESSAGES, response="code one", code="x",
                    calls=[LLMCall("code", 1, 100, 20, 3.0)])
    journal.append(first)
    # the next step reflects on attempt 1 (text stored on attempt 1), then writes attempt 2
    first.reflection = "reflection one"
    journal.update(first)  # same index again, with the reflection: the later line wins
    journal.append(Attempt(index=2, parent=1, kind="repair", messages=MESSAGES, response="code two", code="y",
                           calls=[LLMCall("reflection", 1, 150, 10, 1.5, finish_reason="stop"),
                                  LLMCall("code", 2, 200, 30, 4.0, cached_prompt_tokens=120)]))
    backend = get_backend(f"replay:{journal.path}")
    got = [backend.complete(MESSAGES) for _ in range(3)]
    assert [c.text for c in got] == ["code one", "reflection one", "code two"]
    assert [(c.prompt_tokens, c.completion_tokens, c.seconds) for c in got] == [(100, 20, 3.0), (150, 10, 1.5),
                                                                                 (200, 30, 4.0)]
    assert got[2].cached_prompt_tokens == 120
    with pytest.raises(LLMError, match="recorded 3"):
        backend.complete(MESSAGES)


def test_scripted_backend_records_history_and_scripts_errors() -> None:
    backend = ScriptedBackend(["a b c"])
    backend.enqueue(lambda messages: messages[-1]["content"].upper(), LLMError("boom"))
    assert backend.complete(MESSAGES, temperature=0.7).completion_tokens == 3
    assert backend.complete(MESSAGES, max_tokens=5).text == "SAY HELLO IN ONE WORD."
    with pytest.raises(LLMError, match="boom"):
        backend.complete(MESSAGES)
    with pytest.raises(LLMError, match="no response queued"):
        backend.complete(MESSAGES)
    assert len(backend.history) == 4
    assert backend.history[0] == MESSAGES and backend.history[0][-1]["role"] == "user"
    assert backend.history[0].options["temperature"] == 0.7
    assert backend.history[1].options["max_tokens"] == 5
    assert backend.model_id == "scripted"


# --------------------------------------------------------------------------- generation settings


def test_generation_settings_hold_the_one_set_of_defaults() -> None:
    from tabcoder.backends.hf import HFBackend
    from tabcoder.backends.llamacpp import LlamaCppBackend, LocalBackend
    from tabcoder.backends.replay import ReplayBackend

    for cls in (OpenAIBackend, LocalBackend, LlamaCppBackend, HFBackend, ReplayBackend, ScriptedBackend):
        assert cls.complete is Backend.complete, f"{cls.__name__} repeats the options of complete()"
    backend = ScriptedBackend(["a", "b"])
    backend.complete(MESSAGES)
    backend.complete(MESSAGES, settings=GenerationSettings(temperature=0.0, seed=4), max_tokens=9, stop=["\n"])
    assert backend.history[0].options == GenerationSettings().options()
    assert backend.history[1].options == {"temperature": 0.0, "top_p": GenerationSettings.top_p, "max_tokens": 9,
                                          "seed": 4, "stop": ["\n"]}


def test_an_unknown_generation_option_is_a_clear_error() -> None:
    backend = ScriptedBackend(["a"])
    with pytest.raises(TypeError, match=r"unknown generation option\(s\) temprature; known: temperature, top_p"):
        backend.complete(MESSAGES, temprature=0.5)
    assert backend.history == [] and backend.remaining == 1
    with pytest.raises(TypeError, match="unknown generation option"):
        GenerationSettings.of(GenerationSettings(), top_k=5)


def test_generation_settings_are_frozen_and_keep_stop_as_a_tuple() -> None:
    settings = GenerationSettings(stop=["a", "b"])
    assert settings.stop == ("a", "b") and GenerationSettings(stop="x").stop == ("x",)
    assert hash(settings) == hash(GenerationSettings(stop=("a", "b")))
    assert GenerationSettings.of(settings) is settings
    with pytest.raises(AttributeError):
        settings.temperature = 1.0  # type: ignore[misc]


# --------------------------------------------------------------------------- registry


@pytest.mark.parametrize(
    ("model", "match"),
    [
        ("gpt4", r"unknown model 'gpt4'; valid forms: local, local:qwen2.5-coder-1.5b.*llamacpp:.*openai:<model>"),
        ("nope:x", "valid forms"),
        ("local:llama-70b", r"unknown local model 'llama-70b'.*qwen2.5-coder-0.5b.*llamacpp:"),
        ("llamacpp:/nonexistent/model.gguf", "GGUF file not found: /nonexistent/model.gguf"),
        ("llamacpp:", "llamacpp:/path/to/model.gguf"),
        ("replay:", "replay:<file.jsonl>"),
    ],
)
def test_registry_errors(model: str, match: str) -> None:
    with pytest.raises(BackendError, match=match):
        get_backend(model)


def test_unknown_setting_is_config_error_but_foreign_settings_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"text": "x"}\n')
    with pytest.raises(ConfigError, match="thread"):
        get_backend(f"replay:{path}", thread=2)
    # settings meant for other backends (and None = not given) pass through harmlessly
    assert get_backend(f"replay:{path}", threads=2, base_url=None, n_ctx=4096).complete(MESSAGES).text == "x"


def test_local_without_llama_cpp_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def no_llama(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "llama_cpp" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", no_llama)
    with pytest.raises(BackendError, match=r"pip install 'tabcoder\[local\]'"):
        get_backend("local:qwen2.5-coder-0.5b")


def test_list_models_covers_every_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    statuses = {s.name: s for s in list_models()}
    for name in ("local:qwen2.5-coder-1.5b", "local:qwen2.5-coder-0.5b", "local:smollm2-135m",
                 "llamacpp:/path/to/model.gguf", "openai:<model>", "replay:<file.jsonl>"):
        assert name in statuses
    assert "default" in statuses["local:qwen2.5-coder-0.5b"].detail
    assert not statuses["openai:<model>"].usable and "OPENAI_API_KEY" in statuses["openai:<model>"].detail
    assert statuses["llamacpp:/path/to/model.gguf"].usable == HAS_LLAMA
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1")
    assert {s.name: s for s in list_models()}["openai:<model>"].usable


def test_importing_backends_imports_no_heavy_library() -> None:
    import subprocess
    import sys

    import tabcoder

    # Bypass tabcoder/__init__ (other modules) so this checks the backends package alone.
    code = (
        f"import sys, types; pkg = types.ModuleType('tabcoder'); pkg.__path__ = {list(tabcoder.__path__)!r}\n"
        "sys.modules['tabcoder'] = pkg\n"
        "import tabcoder.backends; print('llama_cpp' in sys.modules, 'openai' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
