"""`tabcoder sft` and its `train` and `export` commands (`sft data` is in `sft_data.py`): LoRA training and
GGUF export, a thin layer over `tabcoder.sft`. The options' defaults are `TrainConfig`'s and `export()`'s."""

from __future__ import annotations

from pathlib import Path

import click

import tabcoder.sft.export as sft_export
from tabcoder.cli.common import fail_cleanly, field_default, param_default
from tabcoder.cli.progress import Progress
from tabcoder.sft.train import TrainConfig


@click.group("sft")
def sft_group() -> None:
    """Fine-tune the code model on its own verified solutions: make data, train a LoRA adapter, export GGUF.

    \b
    tabcoder sft data distill runs/ --out sft-data --eval-tasks concrete
    tabcoder sft train sft-data --base local:qwen2.5-coder-0.5b --out sft-out
    tabcoder sft export sft-out tuned.gguf
    tabcoder run TASK --model llamacpp:tuned.gguf      (or --model hf:sft-out)
    """


def train_option(flag: str, field: str | None = None, **kwargs):
    """An option of `sft train` that sets the TrainConfig field `field` (default: the flag's words joined by
    underscores); its default, shown in --help, is the field's."""
    field = field or flag.removeprefix("--").replace("-", "_")
    return click.option(flag, field, default=field_default(TrainConfig, field), show_default=True, **kwargs)


@click.command("train")
@click.argument("data", type=click.Path(path_type=Path))
# --base: TrainConfig.base has no default (the API names its base); the command trains the packaged model.
@click.option("--base", default="local", show_default=True,
              help="Base model: local[:name], a .gguf file, or a Hugging Face model folder.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder (new, or with --resume).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@train_option("--epochs", type=float)
@click.option("--max-steps", type=int, help="Optimizer steps (overrides --epochs).")
@train_option("--lr", "learning_rate", type=float)
@train_option("--batch-size", type=int)
@train_option("--grad-accum", type=int, help="Micro-batches per optimizer step.")
@train_option("--warmup-steps", type=int)
@train_option("--max-length", type=int, help="Longest example in tokens; longer ones are left out, never cut.")
@train_option("--lora-r", type=int)
@train_option("--lora-alpha", type=int)
@train_option("--lora-dropout", type=float)
@click.option("--target", "targets", default=",".join(field_default(TrainConfig, "target_modules")), show_default=True,
              help="Comma-separated module names that get LoRA adapters.")
@train_option("--save-every", type=int, help="Checkpoint every N steps.")
@train_option("--eval-examples", type=int, help="Held-out examples (eval.jsonl) whose loss is measured before and after.")
@train_option("--threads", type=int,
              help="CPU threads for torch; 0: every core (2 threads took 0.59x the time of 1 on 2 vCPUs).")
@train_option("--device", type=click.Choice(["auto", "cpu", "cuda"]),
              help="auto: a CUDA GPU in bfloat16 where there is one, else the CPU in float32.")
@train_option("--gradient-checkpointing", is_flag=True, help="Less memory, about a third more time per step.")
@train_option("--seed", type=int)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@fail_cleanly
def train_command(data: Path, base: str, out: Path, resume: bool, targets: str, quiet: bool, **settings) -> None:
    """Train a LoRA adapter on DATA (a folder made by `tabcoder sft data`, or a .jsonl of examples).

    The loss covers the assistant's reply only. OUT receives the adapter (adapter/), checkpoints, a
    loss curve (loss.png), train_log.jsonl, summary.json and the same run as llamafactory.yaml.
    """
    from tabcoder.sft.train import train

    config = TrainConfig(base=base, data=str(data), out=str(out),
                         target_modules=[t.strip() for t in targets.split(",") if t.strip()], **settings)
    result = train(config, resume=resume, progress=Progress(quiet))
    s = result.summary
    per_step = _per_step(s["seconds_per_step"])
    click.echo(f"adapter:          {result.adapter_dir}")
    click.echo(f"steps:            {s['steps']} ({per_step} s/step, peak memory {s['peak_memory_mb']:.0f} MB)")
    if s["train_loss_first"] is not None:
        click.echo(f"train loss:       {s['train_loss_first']:.4f} (first step) -> {s['train_loss_last']:.4f} (last)")
    if s["eval_loss_before"] is not None and s["eval_loss_after"] is not None:
        click.echo(f"held-out loss:    {s['eval_loss_before']:.4f} -> {s['eval_loss_after']:.4f}")
    click.echo(f"loss curve:       {result.out / 'loss.png'}")
    click.echo(f"next:             tabcoder sft export {result.out} tuned.gguf")


@click.command("export")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("output", type=click.Path(path_type=Path), required=False)
@click.option("--outtype", type=click.Choice(["f16", "f32"]), default=param_default(sft_export.export, "outtype"),
              show_default=True)
@click.option("--quantize", type=click.Choice(["q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0"]),
              help="Also write a copy quantised by llama.cpp (OUTPUT with .<type>.gguf).")
@click.option("--hf-out", type=click.Path(path_type=Path), help="Also write the merged Hugging Face folder here.")
@click.option("--threads", type=int, default=param_default(sft_export.export, "threads"), show_default=True,
              help="CPU threads; 0: every core.")
@fail_cleanly
def export_command(source: Path, output: Path | None, outtype: str, quantize: str | None, hf_out: Path | None,
                   threads: int) -> None:
    """Merge the adapter of SOURCE (a `tabcoder sft train` output folder) into its base and write OUTPUT (.gguf).

    The GGUF keeps the base GGUF's tokenizer and chat template; use it with --model llamacpp:OUTPUT.
    """
    result = sft_export.export(str(source), output, outtype=outtype, quantize=quantize, hf_out=hf_out, threads=threads,
                    progress=lambda text: click.echo(text, err=True))
    if result.gguf:
        click.echo(f"gguf:      {result.gguf} ({result.tensors} tensors, {result.gguf.stat().st_size / 2**20:.0f} MiB)")
        click.echo(f"use:       tabcoder run TASK --model llamacpp:{result.gguf}")
    if result.quantized:
        click.echo(f"quantised: {result.quantized} ({result.quantized.stat().st_size / 2**20:.0f} MiB)")
    if result.hf_dir:
        click.echo(f"merged:    {result.hf_dir} (use with --model hf:{result.hf_dir})")
    click.echo(f"seconds:   {result.seconds:.1f}")


def selftrain_option(flag: str, field: str | None = None, **kwargs):
    """An option of `sft self-train` that sets the SelfTrainConfig field `field`, with the field's default."""
    from tabcoder.sft.selftrain import SelfTrainConfig

    field = field or flag.removeprefix("--").replace("-", "_")
    return click.option(flag, field, default=field_default(SelfTrainConfig, field), show_default=True, **kwargs)


def _listed(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@click.command("self-train")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder of the whole loop (new, or one to go on with: the same command continues it).")
@selftrain_option("--tasks", type=int, help="Training tasks to generate (may grow when going on: the teacher's "
                  "finished runs are kept, later stages are made again).")
@selftrain_option("--task-seed", type=int)
@selftrain_option("--teacher", help="Model that writes the verified scripts (with the example), e.g. local:qwen2.5-coder-1.5b.")
@selftrain_option("--teacher-seeds", type=int, help="Teacher runs per task (best of N; may grow like --tasks).")
@selftrain_option("--teacher-iterations", type=int, help="Model attempts per teacher run.")
@selftrain_option("--teacher-strategy", type=click.Choice(["reflexion", "tree"]),
                  help="tree: drafts of other model families first (one short call each); reflexion: "
                       "improvements of the baseline, each after a reflection. The tree's drafts gave 18 valid "
                       "of 18 attempts where reflexion gave 4 (docs/sft.md).")
@selftrain_option("--base", help="Model to tune: local[:name], a .gguf file or a Hugging Face folder.")
@selftrain_option("--within", type=float, help="Keep verified attempts within this fraction of their task's best score.")
@selftrain_option("--epochs", type=float)
@selftrain_option("--max-steps", type=int, help="Optimizer steps (overrides --epochs; it and --epochs may grow when "
                  "going on: a longer training from the same examples).")
@selftrain_option("--lr", "learning_rate", type=float)
@selftrain_option("--grad-accum", type=int)
@selftrain_option("--max-length", type=int, help="Longest example in tokens (longer ones are left out).")
@selftrain_option("--lora-r", type=int)
@selftrain_option("--device", type=click.Choice(["auto", "cpu", "cuda"]),
                  help="auto: a CUDA GPU in bfloat16 where there is one, else the CPU.")
@selftrain_option("--gradient-checkpointing", is_flag=True,
                  help="Less memory in training (a 0.5B model on 3,000-token examples needs more than 24 GB "
                       "without it), about a third more time per step; may be turned on when going on.")
@selftrain_option("--quantize", type=click.Choice(["q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0", "none"]),
                  help="Quantise the tuned GGUF (evaluated in this form); none: evaluate the F16 GGUF.")
@click.option("--eval-suite", "eval_suites", default="builtin", show_default=True,
              help="Comma-separated suite folders (tasks/ + answers/) to evaluate on, or builtin.")
@click.option("--eval-tasks", help="Comma-separated tasks of those suites (default: all).")
@selftrain_option("--eval-seeds", type=int)
@selftrain_option("--eval-iterations", type=int, help="Model attempts per evaluation run.")
@click.option("--eval-prompts", default="no-example", show_default=True,
              help="no-example (the model's own scripts, no baseline) and/or default (tabcoder's defaults).")
@selftrain_option("--eval-time-budget", help="Time budget of each run with the default prompt.")
@selftrain_option("--jobs", type=int, help="Teacher runs at a time.")
@selftrain_option("--eval-jobs", type=int, help="Evaluation runs at a time.")
@selftrain_option("--threads", type=int, help="Threads per run (llama.cpp is fastest with 1 here).")
@click.option("--stop-after", type=click.Choice(["tasks", "teacher", "distill", "train", "export", "evaluate"]),
              help="Stop once this stage is done (run the command again to go on).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
@fail_cleanly
def selftrain_command(out: Path, eval_suites: str, eval_tasks: str | None, eval_prompts: str, quiet: bool,
                      **settings) -> None:
    """Self-training in one command: generate tasks, run the teacher, distill its verified scripts, train a
    LoRA adapter, export GGUF, and evaluate base against tuned on tasks training never saw.

    \b
    tabcoder sft self-train --out st                       # the whole loop, packaged 0.5B model
    tabcoder sft self-train --out st                       # again: goes on where it stopped
    tabcoder sft self-train --out st --teacher local:qwen2.5-coder-1.5b --eval-suite builtin,../shared
    tabcoder run TASK --model llamacpp:st/tuned.q4_k_m.gguf
    """
    from tabcoder.sft.selftrain import SelfTrainConfig, self_train

    if settings["quantize"] == "none":
        settings["quantize"] = None
    config = SelfTrainConfig(out=str(out), eval_suites=_listed(eval_suites), eval_tasks=_listed(eval_tasks or "") or None,
                             eval_prompts=_listed(eval_prompts), **settings)
    result = self_train(config, progress=Progress(quiet))
    done = result.state["done"]
    click.echo(f"folder:   {result.out}")
    if "train" in done:
        t = done["train"]
        click.echo(f"training: {t['steps']} steps, {_per_step(t['seconds_per_step'])} s/step, peak memory "
                   f"{t['peak_memory_mb']:.0f} MB, {done['train']['seconds'] / 60:.1f} min")
    if "export" in done:
        click.echo(f"tuned:    --model {done['export']['model']}")
    if result.table:
        click.echo("\n".join(result.table))
    else:
        click.echo(f"stopped after: {', '.join(done) or 'nothing'}; run the same command to go on")


def _per_step(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}"
