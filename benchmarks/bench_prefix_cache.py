"""How much prompt processing llama.cpp's prefix cache saves on the calls after the first of a run.

Every prompt of a run starts with the same system text, task, data profile, rules and example; only the
tail (the previous script, feedback, the ask) changes. llama-cpp-python keeps the last call's tokens in
its KV cache and evaluates only what follows the longest common prefix. The llama.cpp backend records, per
call, `cached_prompt_tokens` (reused) and `prompt_seconds` (time to evaluate the rest).

Two measurements:

* from run journals (`journals`, files or run folders): for calls 2+ of each run, the share of prompt
  tokens reused, and the seconds saved, estimated at the run's own cold prompt speed (its first call,
  which had nothing to reuse);
* `--live TASK`: the same iteration-2 prompts evaluated twice with a real model, right after the draft
  call (warm cache) and after an unrelated prompt (cold), so the saving is measured, not estimated.

    python benchmarks/bench_prefix_cache.py bench-out/strategies/*/2*
    python benchmarks/bench_prefix_cache.py --live ../shared/tasks/penguins --model local:qwen2.5-coder-0.5b
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tabcoder.backends import get_backend
from tabcoder.grading import make_split
from tabcoder.journal import Journal
from tabcoder.profile import profile_task
from tabcoder.prompting import PromptBuilder, extract_code
from tabcoder.task import load_task

FLUSH = [{"role": "user", "content": "Reply with the single word: ok."}]


def journal_paths(items: list[str]) -> list[Path]:
    paths = []
    for item in items:
        path = Path(item)
        path = path / "journal.jsonl" if path.is_dir() else path
        if path.is_file():
            paths.append(path)
    return paths


def run_calls(path: Path) -> list:
    """The run's LLM calls in the order they were made (attempt order, then call order within a step)."""
    journal = Journal.load(path)
    return [c for a in journal.attempts for c in a.calls]


def from_journals(paths: list[Path]) -> str:
    lines = ["| run | calls | prompt tokens, calls 2+ | reused | cold speed (tok/s) | prompt s, calls 2+ | est. s saved | share of prompt time saved |",
             "|---|---|---|---|---|---|---|---|"]
    totals = {"prompt": 0, "cached": 0, "seconds": 0.0, "saved": 0.0}
    for path in paths:
        calls = run_calls(path)
        timed = [c for c in calls if c.prompt_seconds is not None and c.cached_prompt_tokens is not None]
        if len(timed) < 2:
            continue
        first, rest = timed[0], timed[1:]
        speed = (first.prompt_tokens - first.cached_prompt_tokens) / max(first.prompt_seconds, 1e-9)
        prompt = sum(c.prompt_tokens for c in rest)
        cached = sum(c.cached_prompt_tokens for c in rest)
        seconds = sum(c.prompt_seconds for c in rest)
        saved = cached / speed
        totals["prompt"] += prompt
        totals["cached"] += cached
        totals["seconds"] += seconds
        totals["saved"] += saved
        lines.append(f"| {path.parent.parent.name}/{path.parent.name} | {len(calls)} | {prompt} | {cached / prompt:.0%} | {speed:.0f} | "
                     f"{seconds:.0f} | {saved:.0f} | {saved / (saved + seconds):.0%} |")
    if totals["prompt"]:
        lines.append(f"| **all** | | {totals['prompt']} | {totals['cached'] / totals['prompt']:.0%} | | "
                     f"{totals['seconds']:.0f} | {totals['saved']:.0f} | "
                     f"{totals['saved'] / (totals['saved'] + totals['seconds']):.0%} |")
    return "\n".join(lines)


def live(task_dir: Path, model: str, threads: int) -> str:
    """Measure iteration-2 prompts warm (right after the draft) and cold (after an unrelated prompt)."""
    task = load_task(task_dir)
    split = make_split(task)
    builder = PromptBuilder(task, profile_task(task, split.fit, split.valid), timeout=300)
    backend = get_backend(model, threads=threads)
    try:
        draft = backend.complete(builder.draft(), max_tokens=512, seed=1)
        code = extract_code(draft.text) or builder.example()
        feedback = "The script ran and submission.csv is valid. Validation accuracy 0.9000."
        prompts = {
            "reflect (reflexion)": builder.reflect(code, feedback, failed=False),
            "revise (reflexion)": builder.revise(code, feedback, failed=False, reflections=["Use gradient boosting."],
                                                 history=["attempt 1 (draft): accuracy 0.9000"]),
            "improve (tree)": builder.improve(code, feedback, idea=builder.ideas()[0].text, memory=""),
            "draft 2 (tree)": builder.draft_with(builder.approaches()[1], ["gradient boosting"]),
        }
        lines = [f"model {backend.model_id}, task {task.name}; first call: {draft.prompt_tokens} prompt tokens in "
                 f"{draft.prompt_seconds:.1f} s ({draft.cached_prompt_tokens} reused)", "",
                 "| prompt | tokens | reused warm | prompt s warm | prompt s cold | saved |", "|---|---|---|---|---|---|"]
        for name, messages in prompts.items():
            backend.complete(builder.draft(), max_tokens=1, seed=1)  # the cache holds the shared prefix, as in a run
            warm = backend.complete(messages, max_tokens=1, seed=1)
            backend.complete(FLUSH, max_tokens=1, seed=1)  # the cache now shares nothing useful with the prompt
            cold = backend.complete(messages, max_tokens=1, seed=1)
            lines.append(f"| {name} | {warm.prompt_tokens} | {warm.cached_prompt_tokens} | {warm.prompt_seconds:.1f} | "
                         f"{cold.prompt_seconds:.1f} | {1 - warm.prompt_seconds / cold.prompt_seconds:.0%} |")
        return "\n".join(lines)
    finally:
        backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("journals", nargs="*", help="journal.jsonl files or run folders")
    parser.add_argument("--live", type=Path, metavar="TASK", help="measure warm and cold prompts on this task")
    parser.add_argument("--model", default="local:qwen2.5-coder-0.5b")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if not args.journals and not args.live:
        parser.error("give run journals, or --live TASK")
    print(f"`python {' '.join(sys.argv)}`\n")
    if args.journals:
        print(from_journals(journal_paths(args.journals)))
    if args.live:
        print(live(args.live, args.model, args.threads))


if __name__ == "__main__":
    main()
