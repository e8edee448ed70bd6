"""Seconds and peak memory of one LoRA training pass (forward + backward) with eager vs SDPA attention.

Each setting runs in its own process (so that its peak RSS is its own), one after the other, on the same
random tokens: the base model of `tabcoder sft train` (`--base`, float32 on the CPU), LoRA adapters as
training puts them, one sequence of each `--lengths`. `tabcoder sft train` loads models with SDPA.

    python benchmarks/bench_sft_attention.py --base local:smollm2-135m --lengths 1000,3000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

WORKER = r"""
import json, resource, sys, time
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM
from tabcoder.sft.model import resolve_base
from tabcoder.sft.train import DEFAULT_TARGETS

base, impl, length, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)
hf_dir = resolve_base(base).hf_dir
model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32, attn_implementation=impl)
model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=list(DEFAULT_TARGETS), task_type="CAUSAL_LM"))
ids = torch.randint(0, 1000, (1, length))
start = time.perf_counter()
hidden = model(input_ids=ids, output_hidden_states=True).hidden_states[-1]
hidden[:, -200:].float().pow(2).mean().backward()
print(json.dumps({"seconds": time.perf_counter() - start,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="local:smollm2-135m")
    parser.add_argument("--lengths", default="1000,3000")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(f"`python {' '.join(sys.argv)}`\n")
    print("| tokens | eager s | sdpa s | sdpa time / eager | eager peak MB | sdpa peak MB |")
    print("|---|---|---|---|---|---|")
    for length in [int(x) for x in args.lengths.split(",")]:
        found = {}
        for impl in ("eager", "sdpa"):
            done = subprocess.run([sys.executable, "-c", WORKER, args.base, impl, str(length), str(args.threads)],
                                  capture_output=True, text=True, check=True)
            found[impl] = json.loads(done.stdout.strip().splitlines()[-1])
        eager, sdpa = found["eager"], found["sdpa"]
        print(f"| {length} | {eager['seconds']:.1f} | {sdpa['seconds']:.1f} | {sdpa['seconds'] / eager['seconds']:.2f} | "
              f"{eager['peak_mb']:.0f} | {sdpa['peak_mb']:.0f} |")


if __name__ == "__main__":
    main()
