"""LLM throughput: tabcoder's llama.cpp backend vs llama-cpp-python called directly, same settings.

Both sides load the same GGUF with the same threads / n_ctx / n_batch / seed and answer the same
chat prompt at temperature 0 with the same max_tokens; calls alternate order across repeats. Each
call's prompt starts with a fresh nonce so nothing is reused from the KV cache, and prompt and
generation speeds are read from llama.cpp's own perf counters (identical method on both sides).
Also reports the prefix-cache effect (same system message, new user message) and, with
--threads-sweep, tokens/s per thread count.

    python benchmarks/bench_llm.py --model local:qwen2.5-coder-0.5b --repeats 3
    python benchmarks/bench_llm.py --threads-sweep 1,2
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp

from tabcoder.backends import get_backend
from tabcoder.backends.llamacpp import LlamaCppBackend
from tabcoder.backends.weights import ensure_model

SYSTEM = (
    "You are an expert machine-learning engineer. You write one complete, runnable Python script that "
    "trains a model for a tabular prediction task and writes predictions for the test rows. Rules: read "
    "train.csv and test.csv from the working directory; never read labels of the test set; use pandas, "
    "numpy and scikit-learn only; handle missing values and categorical columns explicitly; fix every "
    "random seed; keep the run under five minutes on two CPU cores; write submission.csv with the id "
    "column and one prediction column; print the cross-validated score of the chosen model.\n\n"
    "Task: predict whether a bank customer churns (column `churned`, 0/1) from 18 columns: customer_id "
    "(id), age (int), gender (category), tenure_months (int), balance (float, 12% missing), "
    "num_products (int 1-4), has_credit_card (0/1), is_active (0/1), estimated_salary (float), region "
    "(category, 11 values), contract (monthly/yearly/two-year), payment_method (4 values), "
    "last_login_days (int, 3% missing), support_calls_90d (int), complaints (int), "
    "avg_monthly_spend (float), discount_rate (float) and signup_channel (category, 6 values). "
    "Metric: ROC AUC on a held-out split. Train rows: 8,000. Test rows: 2,000. Class balance: 21% positive."
)
USER = "Write the script. Start with a short plan as Python comments, then the code, in one ```python block."


@dataclass
class Sample:
    prompt_tokens: int
    prompt_s: float
    gen_tokens: int
    gen_s: float
    wall_s: float
    text: str

    @property
    def prompt_tps(self) -> float:
        return self.prompt_tokens / self.prompt_s if self.prompt_s else float("nan")

    @property
    def gen_tps(self) -> float:
        return self.gen_tokens / self.gen_s if self.gen_s else float("nan")


def messages(nonce: str, user: str = USER) -> list[dict[str, str]]:
    return [{"role": "system", "content": f"Session {nonce}.\n{SYSTEM}"}, {"role": "user", "content": user}]


def timed_call(llm: llama_cpp.Llama, call: Any, *args: Any, **kwargs: Any) -> tuple[Any, Sample]:
    """Run `call(*args, **kwargs)` and read llama.cpp's perf counters for it (prompt batch vs 1-token decodes)."""
    llama_cpp.llama_perf_context_reset(llm._ctx.ctx)
    t0 = time.perf_counter()
    result = call(*args, **kwargs)
    wall = time.perf_counter() - t0
    perf = llama_cpp.llama_perf_context(llm._ctx.ctx)
    text = result.text if hasattr(result, "text") else result["choices"][0]["message"]["content"]
    return result, Sample(perf.n_p_eval, perf.t_p_eval_ms / 1e3, perf.n_eval, perf.t_eval_ms / 1e3, wall, text)


def resolve_gguf(model: str) -> Path:
    scheme, _, rest = model.partition(":")
    if scheme == "local":
        return ensure_model(rest or "qwen2.5-coder-1.5b")
    if scheme == "llamacpp":
        return Path(rest)
    sys.exit(f"bench_llm compares llama.cpp backends only; got {model!r}")


def med(values: list[float]) -> float:
    return statistics.median(values)


def compare(args: argparse.Namespace) -> None:
    gguf = resolve_gguf(args.model)
    settings = dict(threads=args.threads, n_ctx=args.n_ctx, n_batch=args.n_batch, seed=0)
    backend = get_backend(args.model, **settings)
    assert isinstance(backend, LlamaCppBackend)
    direct = llama_cpp.Llama(
        model_path=str(gguf), n_ctx=args.n_ctx, n_batch=args.n_batch, n_threads=args.threads,
        n_threads_batch=args.threads, seed=0, verbose=False,
    )
    opts = dict(temperature=0.0, top_p=0.95, max_tokens=args.max_tokens, seed=0)
    print(f"model {args.model} ({gguf.name}), threads={args.threads}, n_ctx={args.n_ctx}, "
          f"max_tokens={args.max_tokens}, repeats={args.repeats}")
    results: dict[str, list[Sample]] = {"direct": [], "backend": []}
    for r in range(args.repeats):
        msgs = messages(uuid.uuid4().hex[:8])  # fresh prefix: no KV reuse on either side
        order = ["direct", "backend"] if r % 2 == 0 else ["backend", "direct"]
        for side in order:
            if side == "direct":
                _, s = timed_call(direct, direct.create_chat_completion, messages=msgs, **opts)
            else:
                _, s = timed_call(backend._llm, backend.complete, msgs, **opts)
            results[side].append(s)
            print(f"  repeat {r + 1} {side:7s}: prompt {s.prompt_tokens} tok {s.prompt_tps:7.1f} tok/s | "
                  f"gen {s.gen_tokens} tok {s.gen_tps:6.1f} tok/s | wall {s.wall_s:6.2f} s")
    same = all(a.text == b.text for a, b in zip(results["direct"], results["backend"]))
    print(f"\n{'median':10s} {'prompt tok/s':>13s} {'gen tok/s':>10s} {'wall s':>8s}")
    for side, samples in results.items():
        print(f"{side:10s} {med([s.prompt_tps for s in samples]):13.1f} {med([s.gen_tps for s in samples]):10.1f} "
              f"{med([s.wall_s for s in samples]):8.2f}")
    d, b = results["direct"], results["backend"]
    print(f"{'ratio b/d':10s} {med([s.prompt_tps for s in b]) / med([s.prompt_tps for s in d]):13.3f} "
          f"{med([s.gen_tps for s in b]) / med([s.gen_tps for s in d]):10.3f} "
          f"{med([s.wall_s for s in b]) / med([s.wall_s for s in d]):8.3f}")
    print(f"identical outputs: {same}")

    # Prefix cache: same system message, different user message.
    nonce = uuid.uuid4().hex[:8]
    first = backend.complete(messages(nonce), temperature=0.0, max_tokens=8)
    second = backend.complete(messages(nonce, USER + " Use gradient boosting."), temperature=0.0, max_tokens=8)
    print("\nprefix cache (backend, same system message, new user message):")
    for label, c in (("first", first), ("second", second)):
        print(f"  {label:6s}: prompt {c.prompt_tokens} tok, cached {c.cached_prompt_tokens}, "
              f"prompt time {c.prompt_seconds:.2f} s")
    backend.close()
    direct.close()


def sweep(args: argparse.Namespace) -> None:
    counts = [int(x) for x in args.threads_sweep.split(",")]
    print(f"thread sweep, model {args.model}, n_ctx={args.n_ctx}, max_tokens={args.max_tokens}, "
          f"repeats={args.repeats}, order rotated per repeat (median)")
    backends = {n: get_backend(args.model, threads=n, n_ctx=args.n_ctx, n_batch=args.n_batch) for n in counts}
    samples: dict[int, list[Sample]] = {n: [] for n in counts}
    for r in range(args.repeats):
        msgs = messages(uuid.uuid4().hex[:8])
        rotated = counts[r % len(counts):] + counts[: r % len(counts)]
        for n in rotated:
            backend = backends[n]
            assert isinstance(backend, LlamaCppBackend)
            _, s = timed_call(backend._llm, backend.complete, msgs, temperature=0.0, max_tokens=args.max_tokens, seed=0)
            samples[n].append(s)
    print(f"{'threads':>7s} {'prompt tok/s':>13s} {'gen tok/s':>10s} {'wall s':>8s}")
    for n in counts:
        backends[n].close()
        ss = samples[n]
        print(f"{n:7d} {med([s.prompt_tps for s in ss]):13.1f} {med([s.gen_tps for s in ss]):10.1f} "
              f"{med([s.wall_s for s in ss]):8.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="local:qwen2.5-coder-0.5b")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--n-ctx", type=int, default=4096)
    p.add_argument("--n-batch", type=int, default=512)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--threads-sweep", default=None, help="comma-separated thread counts, e.g. 1,2")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"cpus {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
    if args.threads_sweep:
        sweep(args)
    else:
        compare(args)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
