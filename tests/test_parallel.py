"""Parallel evaluation (`--workers`): a run whose scripts are evaluated several at a time, while the model
writes the next, records the same content as a serial run with the same seed and replayed responses."""

from __future__ import annotations

import json
from pathlib import Path

from tabcoder import RunConfig, run
from tabcoder.evaluation import EvaluationPool
from tabcoder.prompting import fence

from support import DIAGNOSIS, WINE, journal_records, latest, variant, write_replay

#: Fields that are timings (or depend on them); everything else must match between serial and parallel runs.
TIMING = {"run_seconds", "started_at", "finished_at", "peak_memory_mb", "stderr", "calls"}


def replay_file(tmp_path: Path) -> Path:
    """The model's answers in the order a greedy tree search asks for them: three drafts (the second fails;
    the first is slow), the diagnosis and repair of draft 2, an improvement that repeats the repair (while
    the repair is still being evaluated), and two more improvements."""
    scripts = [variant(1, sleep=2.0), variant(2, broken=True), variant(3, sleep=0.2)]
    texts = [fence(code) for code in scripts]
    texts += [DIAGNOSIS, fence(variant(4, sleep=1.0)), fence(variant(4, sleep=1.0)), fence(variant(6)),
              fence(variant(7))]
    return write_replay(tmp_path / "answers.jsonl", texts)


def content(run_dir: Path) -> list[dict]:
    out = []
    for last in journal_records(run_dir):
        record = {k: v for k, v in last.items() if k not in TIMING}
        record["calls"] = [{k: v for k, v in c.items() if k not in ("seconds", "prompt_seconds")}
                           for c in last["calls"]]
        out.append(record)
    return out


def selection(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())["selection"]


def test_parallel_evaluation_records_the_same_content_as_a_serial_run(tmp_path):
    replay = replay_file(tmp_path)
    options = dict(strategy="tree", drafts=3, iterations=7, timeout=60, confirm_folds=2, confirm_top=2, seed=7,
                   model=f"replay:{replay}")
    serial = run(WINE, config=RunConfig(baseline=False, out_dir=tmp_path / "serial", workers=1, **options))
    parallel = run(WINE, config=RunConfig(baseline=False, out_dir=tmp_path / "parallel", workers=3, **options))

    reference = content(serial.run_dir)
    assert [r["kind"] for r in reference] == ["draft", "draft", "draft", "repair", "improve", "improve", "improve"]
    assert reference[4]["duplicate_of"] == 4, "the repeat of an attempt still in flight is caught"
    assert [r["valid"] for r in reference] == [True, False, True, True, False, True, True]
    assert content(parallel.run_dir) == reference
    assert selection(parallel.run_dir) == selection(serial.run_dir)
    assert parallel.best.index == serial.best.index and parallel.final_valid

    # and the parallel run did overlap: draft 2 was written and graded while draft 1 was still running
    records = latest(parallel.run_dir)
    assert records[2]["started_at"] < records[1]["finished_at"]
    assert records[3]["started_at"] < records[1]["finished_at"]


def test_the_pool_runs_inline_with_one_worker_and_concurrently_with_more():
    import threading

    with EvaluationPool(1) as pool:
        assert pool.submit(threading.current_thread).result() is threading.current_thread()
        failed = pool.submit(lambda: 1 / 0)
        assert isinstance(failed.exception(), ZeroDivisionError)
    barrier = threading.Barrier(3, timeout=10)
    with EvaluationPool(3) as pool:
        futures = [pool.submit(barrier.wait) for _ in range(3)]  # deadlocks unless all three run at once
        assert sorted(f.result() for f in futures) == [0, 1, 2]

