"""`tabcoder sft`: fine-tuning data, LoRA training and export (a thin layer over `tabcoder.sft`)."""

from __future__ import annotations

from pathlib import Path

import click

from tabcoder.cli_common import fail_cleanly
from tabcoder.cli_sft_data import data_group


@click.group("sft")
def sft_group() -> None:
    """Fine-tune the code model on its own verified solutions: make data, train a LoRA adapter, export GGUF.

    \b
    tabcoder sft data distill runs/ --out sft-data --eval-tasks concrete
    tabcoder sft train sft-data --base local:qwen2.5-coder-0.5b --out sft-out
    tabcoder sft export sft-out tuned.gguf
    tabcoder run TASK --model llamacpp:tuned.gguf      (or --model hf:sft-out)
    """


sft_group.add_command(data_group)


class TrainProgress:
    """A progress bar over optimizer steps on stderr, plus the lines that matter."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar = None

    def __call__(self, kind: str, data: dict) -> None:
        if self.quiet:
            return
        if kind == "train_start":
            base = data["base"]
            origin = f" (from {base.source_gguf})" if base.source_gguf else ""
            click.echo(f"base {base.hf_dir}{origin}; device {data['device']}; {data['examples']} examples"
                       + (f" ({data['too_long']} left out: longer than --max-length)" if data["too_long"] else "")
                       + f", {data['eval_examples']} held out; {data['steps']} steps; "
                       f"{data['trainable']:,} trainable parameters", err=True)
            if data["resumed_at"]:
                click.echo(f"resuming after step {data['resumed_at']}", err=True)
            from tqdm import tqdm

            self.bar = tqdm(total=data["steps"], initial=data["resumed_at"], unit="step", dynamic_ncols=True)
        elif kind == "eval":
            text = f"held-out loss {data['when']} training: {data['loss']:.4f}"
            (self.bar.write(text) if self.bar else click.echo(text, err=True))
        elif kind == "step" and self.bar is not None:
            self.bar.set_postfix(loss=f"{data['loss']:.4f}", s_per_step=f"{data['seconds']:.1f}")
            self.bar.update(1)
        elif kind == "train_end" and self.bar is not None:
            self.bar.close()


@sft_group.command("train")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--base", default="local", show_default=True,
              help="Base model: local[:name], a .gguf file, or a Hugging Face model folder.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder (new, or with --resume).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--epochs", type=float, default=1.0, show_default=True)
@click.option("--max-steps", type=int, help="Optimizer steps (overrides --epochs).")
@click.option("--lr", "learning_rate", type=float, default=2e-4, show_default=True)
@click.option("--batch-size", type=int, default=1, show_default=True)
@click.option("--grad-accum", type=int, default=4, show_default=True, help="Micro-batches per optimizer step.")
@click.option("--warmup-steps", type=int, default=2, show_default=True)
@click.option("--max-length", type=int, default=2048, show_default=True,
              help="Longest example in tokens; longer ones are left out, never cut.")
@click.option("--lora-r", type=int, default=16, show_default=True)
@click.option("--lora-alpha", type=int, default=32, show_default=True)
@click.option("--lora-dropout", type=float, default=0.05, show_default=True)
@click.option("--target", "targets", default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
              show_default=True, help="Comma-separated module names that get LoRA adapters.")
@click.option("--save-every", type=int, default=10, show_default=True, help="Checkpoint every N steps.")
@click.option("--eval-examples", type=int, default=16, show_default=True,
              help="Held-out examples (eval.jsonl) whose loss is measured before and after.")
@click.option("--threads", type=int, default=0, show_default=True,
              help="CPU threads for torch; 0: every core (2 threads took 0.59x the time of 1 on 2 vCPUs).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="auto: a CUDA GPU in bfloat16 where there is one, else the CPU in float32.")
@click.option("--gradient-checkpointing", is_flag=True, help="Less memory, about a third more time per step.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@fail_cleanly
def train_command(data: Path, base: str, out: Path, resume: bool, targets: str, quiet: bool, **settings) -> None:
    """Train a LoRA adapter on DATA (a folder made by `tabcoder sft data`, or a .jsonl of examples).

    The loss covers the assistant's reply only. OUT receives the adapter (adapter/), checkpoints, a
    loss curve (loss.png), train_log.jsonl, summary.json and the same run as llamafactory.yaml.
    """
    from tabcoder.sft.train import TrainConfig, train

    config = TrainConfig(base=base, data=str(data), out=str(out),
                         target_modules=[t.strip() for t in targets.split(",") if t.strip()], **settings)
    result = train(config, resume=resume, progress=TrainProgress(quiet))
    s = result.summary
    per_step = "-" if s["seconds_per_step"] is None else f"{s['seconds_per_step']:.1f}"
    click.echo(f"adapter:          {result.adapter_dir}")
    click.echo(f"steps:            {s['steps']} ({per_step} s/step, peak memory {s['peak_memory_mb']:.0f} MB)")
    if s["train_loss_first"] is not None:
        click.echo(f"train loss:       {s['train_loss_first']:.4f} (first step) -> {s['train_loss_last']:.4f} (last)")
    if s["eval_loss_before"] is not None and s["eval_loss_after"] is not None:
        click.echo(f"held-out loss:    {s['eval_loss_before']:.4f} -> {s['eval_loss_after']:.4f}")
    click.echo(f"loss curve:       {result.out / 'loss.png'}")
    click.echo(f"next:             tabcoder sft export {result.out} tuned.gguf")


@sft_group.command("export")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("output", type=click.Path(path_type=Path), required=False)
@click.option("--outtype", type=click.Choice(["f16", "f32"]), default="f16", show_default=True)
@click.option("--quantize", type=click.Choice(["q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0"]),
              help="Also write a copy quantised by llama.cpp (OUTPUT with .<type>.gguf).")
@click.option("--hf-out", type=click.Path(path_type=Path), help="Also write the merged Hugging Face folder here.")
@click.option("--threads", type=int, default=0, show_default=True, help="CPU threads; 0: every core.")
@fail_cleanly
def export_command(source: Path, output: Path | None, outtype: str, quantize: str | None, hf_out: Path | None,
                   threads: int) -> None:
    """Merge the adapter of SOURCE (a `tabcoder sft train` output folder) into its base and write OUTPUT (.gguf).

    The GGUF keeps the base GGUF's tokenizer and chat template; use it with --model llamacpp:OUTPUT.
    """
    from tabcoder.sft.export import export

    result = export(str(source), output, outtype=outtype, quantize=quantize, hf_out=hf_out, threads=threads,
                    progress=lambda text: click.echo(text, err=True))
    if result.gguf:
        click.echo(f"gguf:      {result.gguf} ({result.tensors} tensors, {result.gguf.stat().st_size / 2**20:.0f} MiB)")
        click.echo(f"use:       tabcoder run TASK --model llamacpp:{result.gguf}")
    if result.quantized:
        click.echo(f"quantised: {result.quantized} ({result.quantized.stat().st_size / 2**20:.0f} MiB)")
    if result.hf_dir:
        click.echo(f"merged:    {result.hf_dir} (use with --model hf:{result.hf_dir})")
    click.echo(f"seconds:   {result.seconds:.1f}")
