"""Supervised fine-tuning of the code model on its own verified solutions.

The data path: instruction files (alpaca, ShareGPT) and tabcoder run folders become chat *examples*
(`sft.data`, `sft.distill`); `sft.train` trains a LoRA adapter on them with transformers + peft (the examples
encoded by `sft.encoding`, checkpoints in `sft.checkpoints`, a LLaMA-Factory config by `sft.llamafactory`);
`sft.export` merges the adapter and writes a GGUF file that the llama.cpp backends load, while the
`hf:` backend (`backends.hf`) uses a folder and an adapter directly. torch, transformers and peft are
imported only inside the functions that need them (the `sft` extra).

Self-training (`sft.selftrain`, `tabcoder sft self-train`) chains the whole loop: `sft.tasks` generates
training tasks, a teacher model solves them in `tabcoder run` processes, `sft.distill` keeps what the harness
verified, then train, export, and `sft.evaluate` runs base and tuned models on tasks training never saw.
"""
