"""The run folder of a fine-tuning run as far as resuming goes: starting or resuming it, checkpoints, the log.

Scope: `check_out` (a new run needs an empty folder; a resumed one must match the settings it started
with, except those in `RESUMABLE`), `save_checkpoint` (adapter, optimizer, scheduler, random state and
step, written to a temporary folder and renamed; the last `KEEP_CHECKPOINTS` are kept),
`latest_checkpoint`, and `truncate_log` (the log lines past the checkpoint a resumed run restarts from).
Nothing here builds a model or runs a step (`sft.train`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tabcoder.errors import ConfigError
from tabcoder.sft.model import TRAIN_MARKER

if TYPE_CHECKING:
    from tabcoder.sft.train import TrainConfig

KEEP_CHECKPOINTS = 2
# settings that may differ when a run is resumed (the rest must match what the run started with)
RESUMABLE = {"max_steps", "epochs", "save_every", "threads", "device", "eval_examples", "gradient_checkpointing"}


def check_out(out: Path, config: TrainConfig, resume: bool) -> None:
    """A ConfigError unless `out` suits the run: empty (or new) to start one, a run with the same settings
    (but those in RESUMABLE) to resume one."""
    marker = out / TRAIN_MARKER
    if resume:
        if not marker.is_file():
            raise ConfigError(f"nothing to resume in {out} (no {TRAIN_MARKER}); start a run there without --resume")
        started = json.loads(marker.read_text())["config"]
        mine = asdict(config)
        differing = sorted(k for k in started if k not in RESUMABLE and k in mine and started[k] != mine[k]
                           and k not in ("base", "data", "out"))
        if differing:
            raise ConfigError(f"--resume with settings that differ from the run's start: {', '.join(differing)}; "
                              f"the run in {out} started with " +
                              ", ".join(f"{k}={started[k]!r}" for k in differing))
    elif out.exists() and any(out.iterdir()):
        hint = " (a fine-tuning run: add --resume to continue it)" if marker.is_file() else ""
        raise ConfigError(f"output folder {out} exists and is not empty{hint}; choose a new --out")


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint folder of the run in `out`, or None."""
    done = sorted(p for p in (out / "checkpoints").glob("step-*") if (p / "state.json").is_file())
    return done[-1] if done else None


def save_checkpoint(out: Path, model: Any, optimizer: Any, scheduler: Any, state: dict) -> None:
    """Write the checkpoint of `state["step"]` (whole or not at all) and drop all but the last few."""
    import torch  # imported and checked by train()
    root = out / "checkpoints"
    final = root / f"step-{state['step']:06d}"
    tmp = root / f".tmp-{state['step']:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp / "adapter")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(torch.get_rng_state(), tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps(state))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(p for p in root.glob("step-*"))[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)


def truncate_log(path: Path, step: int) -> None:
    """Drop log lines past the checkpoint a resumed run restarts from."""
    if not path.is_file():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in lines))
