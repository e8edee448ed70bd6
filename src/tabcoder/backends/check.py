"""`tabcoder models --check`: does a local model load and generate on this machine?

Each model is loaded in its own process (the same server a run uses), asked for a few tokens, and
stopped; a crash, an abort or a load failure is reported with how it ended and what to do, never as a
dead `tabcoder`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tabcoder.backends import model_process
from tabcoder.errors import TabcoderError

PROMPT = [{"role": "user", "content": "Write the Python expression for one plus one."}]
CHECK_TOKENS = 8


@dataclass(frozen=True)
class CheckOutcome:
    ok: bool
    detail: str


def check_model(model: str, *, llm_timeout: float = 120.0) -> CheckOutcome:
    """Load `model` (a local or llamacpp model string) in a fresh process and generate a few tokens."""
    from tabcoder.backends.llamacpp import LocalBackend, local_spec

    try:
        spec = local_spec(model, {})
        if spec is None:
            return CheckOutcome(False, "only local:<name> and llamacpp:<path> models can be checked here")
        started = time.perf_counter()
        server = model_process.ModelServer.start(spec)
    except TabcoderError as exc:
        return CheckOutcome(False, str(exc))
    try:
        load = time.perf_counter() - started
        backend = LocalBackend(spec, timeout=llm_timeout, server=server)
        completion = backend.complete(PROMPT, temperature=0.0, max_tokens=CHECK_TOKENS, seed=0)
    except TabcoderError as exc:
        return CheckOutcome(False, str(exc))
    finally:
        server.stop()
    prompt = completion.prompt_seconds or 0.0
    generating = max(1e-9, completion.seconds - prompt)
    return CheckOutcome(True, f"loaded in {load:.1f} s; read {completion.prompt_tokens} prompt tokens in {prompt:.1f} s, "
                              f"wrote {completion.completion_tokens} in {generating:.1f} s "
                              f"({completion.completion_tokens / generating:.0f} tok/s); threads {spec.threads}, "
                              f"extra buffer types {'on' if spec.extra_bufts else 'off'}")
