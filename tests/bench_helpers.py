"""Toy benchmark results for the bench tests (not a test module itself): two tasks, four systems, rows a
report can be built from and checked by hand."""

from __future__ import annotations

import json

from tabcoder.bench.store import CellRow

# Two tasks, one seed. "acc" is accuracy (higher is better), "err" is rmse (lower is better).
#            dummy  hgb   model-a  model-b
# acc        0.5    0.8   0.9      (no valid submission)
# err        10     5     6        4
TOY = {
    "acc": ("accuracy", True, {"dummy": 0.5, "hgb": 0.8, "model-a": 0.9, "model-b": None}),
    "err": ("rmse", False, {"dummy": 10.0, "hgb": 5.0, "model-a": 6.0, "model-b": 4.0}),
}


def toy_row(task: str, system: str, test: float | None, *, metric: str, greater: bool, seed: int = 0,
            config_hash: str = "h1", seconds: float = 10.0, tokens: int = 0) -> CellRow:
    llm = system.startswith("model")
    model, strategy = (system, "reflexion") if llm else (system, "")
    key = f"toy/{task}/{system}/seed={seed}/{config_hash}"
    return CellRow(key=key, suite="toy", task=task, kind="llm" if llm else "baseline", model=model, strategy=strategy,
                   seed=seed, config_hash=config_hash, config_json=json.dumps({}), status="done", metric=metric,
                   greater_is_better=int(greater), validation_score=test, test_score=test, valid=int(test is not None),
                   attempts=3 if llm else 1, tokens=tokens or (1000 if llm else 0), seconds=seconds)


def toy_rows(seeds: int = 1) -> list[CellRow]:
    rows = []
    for seed in range(seeds):
        for task, (metric, greater, scores) in TOY.items():
            for system, value in scores.items():
                shifted = None if value is None else value + 0.01 * seed
                rows.append(toy_row(task, system, shifted, metric=metric, greater=greater, seed=seed,
                                    seconds=5.0 * (1 + seed) if system.startswith("model") else 0.5))
    return rows
