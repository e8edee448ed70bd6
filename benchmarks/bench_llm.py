"""LLM throughput: tabcoder's local backend (the model in its own process, over HTTP) vs
llama-cpp-python called directly in this process, same GGUF and settings; and llama.cpp's extra
buffer types (repacked weights, AMX) on vs off.

Both sides answer the same chat prompt at temperature 0 with the same max_tokens; calls alternate
order across repeats. Each call's prompt starts with a fresh nonce so nothing is reused from the KV
cache. Prompt time is the first llama.cpp eval of the call (the prompt batch), measured the same way on
both sides (`LlamaCppBackend`'s probe; the server reports it in `timings`); generation time is the rest
of the call's wall time, so the process side's figure includes its HTTP round trip. Also reports the
prefix-cache effect (same system message, new user message) on both sides, and, with --threads-sweep,
tokens/s per thread count.

    python benchmarks/bench_llm.py --model local:qwen2.5-coder-0.5b --repeats 3
    python benchmarks/bench_llm.py --extra-bufts-sweep          # on vs off, in this process
    python benchmarks/bench_llm.py --threads-sweep 1,2
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabcoder.backends import Backend, get_backend
from tabcoder.backends.llamacpp import LlamaCppBackend, resolve_extra_bufts
from tabcoder.backends.weights import DEFAULT_LOCAL_MODEL, ensure_model

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
    prompt_tokens: int  # evaluated (not taken from the cache)
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


def cpu_flags() -> set[str]:
    """The CPU feature flags of this machine (empty where /proc/cpuinfo cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def messages(nonce: str, user: str = USER) -> list[dict[str, str]]:
    return [{"role": "system", "content": f"Session {nonce}.\n{SYSTEM}"}, {"role": "user", "content": user}]


def timed(backend: Backend, msgs: list[dict[str, str]], **opts: Any) -> Sample:
    t0 = time.perf_counter()
    c = backend.complete(msgs, **opts)
    wall = time.perf_counter() - t0
    prompt_s = c.prompt_seconds or 0.0
    evaluated = c.prompt_tokens - (c.cached_prompt_tokens or 0)
    return Sample(evaluated, prompt_s, c.completion_tokens, max(1e-9, wall - prompt_s), wall, c.text)


def resolve_gguf(model: str) -> Path:
    scheme, _, rest = model.partition(":")
    if scheme == "local":
        return ensure_model(rest or DEFAULT_LOCAL_MODEL)
    if scheme == "llamacpp":
        return Path(rest)
    sys.exit(f"bench_llm compares llama.cpp backends only; got {model!r}")


def med(values: list[float]) -> float:
    return statistics.median(values)


def side_by_side(backends: dict[str, Backend], repeats: int, max_tokens: int) -> dict[str, list[Sample]]:
    names = list(backends)
    results: dict[str, list[Sample]] = {n: [] for n in names}
    opts = dict(temperature=0.0, top_p=0.95, max_tokens=max_tokens, seed=0)
    for r in range(repeats):
        msgs = messages(uuid.uuid4().hex[:8])  # fresh prefix: no KV reuse on either side
        for name in names[r % len(names):] + names[: r % len(names)]:
            s = timed(backends[name], msgs, **opts)
            results[name].append(s)
            print(f"  repeat {r + 1} {name:9s}: prompt {s.prompt_tokens} tok {s.prompt_tps:7.1f} tok/s | "
                  f"gen {s.gen_tokens} tok {s.gen_tps:6.1f} tok/s | wall {s.wall_s:6.2f} s")
    return results


def table(results: dict[str, list[Sample]], ratio_label: str) -> None:
    print(f"\n{'median':12s} {'prompt tok/s':>13s} {'gen tok/s':>10s} {'wall s':>8s}")
    for side, samples in results.items():
        print(f"{side:12s} {med([s.prompt_tps for s in samples]):13.1f} {med([s.gen_tps for s in samples]):10.1f} "
              f"{med([s.wall_s for s in samples]):8.2f}")
    a, b = list(results.values())
    print(f"{ratio_label:12s} {med([s.prompt_tps for s in b]) / med([s.prompt_tps for s in a]):13.3f} "
          f"{med([s.gen_tps for s in b]) / med([s.gen_tps for s in a]):10.3f} "
          f"{med([s.wall_s for s in b]) / med([s.wall_s for s in a]):8.3f}")
    print(f"identical outputs: {all(x.text == y.text for x, y in zip(a, b))}")


def prefix_cache(name: str, backend: Backend) -> float:
    """Prompt seconds saved by the cache on a second call that shares the system message."""
    nonce = uuid.uuid4().hex[:8]
    first = backend.complete(messages(nonce), temperature=0.0, max_tokens=8)
    second = backend.complete(messages(nonce, USER + " Use gradient boosting."), temperature=0.0, max_tokens=8)
    saved = (first.prompt_seconds or 0) - (second.prompt_seconds or 0)
    print(f"  {name:9s}: first prompt {first.prompt_tokens} tok in {first.prompt_seconds:.2f} s; second "
          f"{second.prompt_tokens} tok, {second.cached_prompt_tokens} cached, in {second.prompt_seconds:.2f} s "
          f"(saved {saved:.2f} s)")
    return saved


def compare(args: argparse.Namespace) -> None:
    gguf = resolve_gguf(args.model)
    extra = resolve_extra_bufts(args.extra_bufts)
    print(f"model {args.model} ({gguf.name}), threads={args.threads}, n_ctx={args.n_ctx}, "
          f"max_tokens={args.max_tokens}, repeats={args.repeats}, extra buffer types {'on' if extra else 'off'}")
    direct = LlamaCppBackend(gguf, model_id="direct", threads=args.threads, n_ctx=args.n_ctx,
                             n_batch=args.n_batch, extra_bufts=extra)
    process = get_backend(args.model, threads=args.threads, n_ctx=args.n_ctx, n_batch=args.n_batch,
                          extra_bufts="on" if extra else "off")
    results = side_by_side({"direct": direct, "process": process}, args.repeats, args.max_tokens)
    table(results, "process/dir")
    print("\nprefix cache (same system message, new user message):")
    saved = {name: prefix_cache(name, b) for name, b in (("direct", direct), ("process", process))}
    if saved["direct"] > 0:
        print(f"  saved by the process / saved directly: {saved['process'] / saved['direct']:.3f}")
    process.close()
    direct.close()


def extra_bufts_sweep(args: argparse.Namespace) -> None:
    gguf = resolve_gguf(args.model)
    print(f"extra buffer types off vs on, model {args.model}, threads={args.threads}, n_ctx={args.n_ctx}, "
          f"max_tokens={args.max_tokens}, repeats={args.repeats}, in this process")
    backends: dict[str, Backend] = {
        f"bufts {label}": LlamaCppBackend(gguf, model_id=label, threads=args.threads, n_ctx=args.n_ctx,
                                         n_batch=args.n_batch, extra_bufts=label == "on")
        for label in ("off", "on")}
    results = side_by_side(backends, args.repeats, args.max_tokens)
    table(results, "on/off")
    for backend in backends.values():
        backend.close()


def sweep(args: argparse.Namespace) -> None:
    gguf = resolve_gguf(args.model)
    counts = [int(x) for x in args.threads_sweep.split(",")]
    print(f"thread sweep, model {args.model}, n_ctx={args.n_ctx}, max_tokens={args.max_tokens}, "
          f"repeats={args.repeats}, order rotated per repeat (median)")
    backends: dict[str, Backend] = {
        f"{n} threads": LlamaCppBackend(gguf, model_id=str(n), threads=n, n_ctx=args.n_ctx, n_batch=args.n_batch,
                                        extra_bufts=resolve_extra_bufts(args.extra_bufts))
        for n in counts}
    results = side_by_side(backends, args.repeats, args.max_tokens)
    print(f"{'threads':>9s} {'prompt tok/s':>13s} {'gen tok/s':>10s} {'wall s':>8s}")
    for name, ss in results.items():
        backends[name].close()
        print(f"{name:>9s} {med([s.prompt_tps for s in ss]):13.1f} {med([s.gen_tps for s in ss]):10.1f} "
              f"{med([s.wall_s for s in ss]):8.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="local:qwen2.5-coder-0.5b")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--n-ctx", type=int, default=4096)
    p.add_argument("--n-batch", type=int, default=512)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--extra-bufts", default="auto", choices=("auto", "on", "off"))
    p.add_argument("--extra-bufts-sweep", action="store_true", help="extra buffer types off vs on, in this process")
    p.add_argument("--threads-sweep", default=None, help="comma-separated thread counts, e.g. 1,2")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    flags = sorted(f for f in cpu_flags() if f.startswith(("avx", "amx")) or f in ("f16c", "fma"))
    print(f"cpus {os.cpu_count()}, {platform.processor() or platform.machine()}, flags {' '.join(flags)}, "
          f"load average before: {os.getloadavg()[0]:.2f}")
    if args.threads_sweep:
        sweep(args)
    elif args.extra_bufts_sweep:
        extra_bufts_sweep(args)
    else:
        compare(args)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
