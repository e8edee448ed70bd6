"""The tree search: policies on hand-made trees, and the strategy on the wine task with a scripted model
and the real sandbox (drafts with different approaches, repairs up to a depth, one change per improvement,
a bounded memory)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tabcoder import RunConfig, run
from tabcoder.backends import ScriptedBackend
from tabcoder.errors import ConfigError
from tabcoder.journal import Attempt
from tabcoder.ideas import IMPROVEMENT_IDEAS, METRIC_IDEAS
from tabcoder.strategies.common import summarise
from tabcoder.strategies.policy import Action, GreedyPolicy, TreeView, UCBPolicy, make_policy

from support import DIAGNOSIS, WINE, Responder, good_script, journal_lines, journal_records


def node(index: int, parent: int | None, kind: str, score: float | None, **extra) -> Attempt:
    return Attempt(index=index, parent=parent, kind=kind, messages=[], response="", code=f"# {index}",
                   valid=score is not None, score=score, metric="accuracy", greater_is_better=True, **extra)


def run_tree(tmp_path: Path, responder: Responder, **options):
    options.setdefault("iterations", 6)
    options.setdefault("timeout", 60)
    options.setdefault("confirm_folds", 0)
    options.setdefault("baseline", False)
    options.setdefault("drafts", 3)  # the scenarios below were written for three drafts
    backend = responder.backend()
    result = run(WINE, config=RunConfig(out_dir=tmp_path / "runs", strategy="tree", **options), backend=backend)
    return result, backend


def asks(backend: ScriptedBackend) -> list[str]:
    return [call[-1]["content"] for call in backend.history]


# --------------------------------------------------------------------------- policies


def test_greedy_drafts_first_then_repairs_a_failed_draft_and_improves_the_best():
    policy = GreedyPolicy()
    assert policy.plan(TreeView([], 3, 2), 2) == [Action("draft")] * 3
    tree = [node(1, None, "draft", 0.9), node(2, None, "draft", None), node(3, None, "draft", 0.95)]
    assert policy.plan(TreeView(tree, 3, 2), 2) == [Action("repair", 2), Action("improve", 3)]


def test_greedy_stops_repairing_at_the_debug_depth():
    tree = [node(1, None, "draft", 0.9), node(2, None, "draft", None), node(3, 2, "repair", None),
            node(4, 3, "repair", None)]
    view = TreeView(tree, 2, 2)
    assert view.repairs_above(tree[3]) == 2 and view.repairable() == []
    assert GreedyPolicy().plan(view, 2) == [Action("improve", 1)] * 2


def test_greedy_drafts_again_when_nothing_works_and_nothing_is_left_to_repair():
    tree = [node(1, None, "draft", None), node(2, 1, "repair", None)]
    assert GreedyPolicy().plan(TreeView(tree, 1, 1), 2) == [Action("draft")] * 2


def test_greedy_repairs_a_failed_change_to_the_best_node_but_not_to_others():
    tree = [node(1, None, "draft", 0.9), node(2, None, "draft", 0.8), node(3, 1, "improve", None),
            node(4, 2, "improve", None)]
    assert GreedyPolicy().plan(TreeView(tree, 2, 2), 2) == [Action("repair", 3), Action("improve", 1)]


def test_an_exhausted_node_makes_way_for_the_next_best_then_for_a_new_draft():
    tree = [node(1, None, "draft", 0.95), node(2, None, "draft", 0.9), node(3, 1, "improve", None),
            node(4, 1, "improve", None)]
    assert GreedyPolicy().plan(TreeView(tree, 2, 0, max_improvements=2), 1) == [Action("improve", 2)]
    tree += [node(5, 2, "improve", None), node(6, 2, "improve", None)]
    assert GreedyPolicy().plan(TreeView(tree, 2, 0, max_improvements=2), 1) == [Action("draft")]
    assert UCBPolicy().plan(TreeView(tree, 2, 0, max_improvements=2), 1) == [Action("draft")]


def test_ucb_explores_a_less_visited_node():
    # node 1 is the best but has been expanded three times; node 2 is nearly as good and never expanded
    tree = [node(1, None, "draft", 0.95), node(2, None, "draft", 0.94), node(3, 1, "improve", 0.90),
            node(4, 1, "improve", 0.91), node(5, 1, "improve", 0.92)]
    view = TreeView(tree, 2, 2)
    assert GreedyPolicy().plan(view, 1) == [Action("improve", 1)]
    assert UCBPolicy(c=1.0).plan(view, 1) == [Action("improve", 2)]
    assert UCBPolicy(c=0.0).plan(view, 1) == [Action("improve", 1)]


def test_policy_names_are_parsed_with_fix_it_messages():
    assert isinstance(make_policy("greedy"), GreedyPolicy)
    assert make_policy("ucb:0.3").c == pytest.approx(0.3)
    with pytest.raises(ConfigError, match="ucb:0.7"):
        make_policy("ucb:lots")
    with pytest.raises(ConfigError, match="greedy"):
        make_policy("random")


def test_memory_is_bounded_keeps_the_best_and_reports_failures():
    tree = [node(i, None, "draft", None if i % 2 else 0.5 + i / 100, idea=f"idea {i}") for i in range(1, 21)]
    tree[3].score = 0.99  # node 4 is the best
    lines = summarise(tree, 6, name="node")
    assert len(lines) == 6
    assert lines[0].startswith("node 4 ") and "0.9900" in lines[0]
    assert [int(re.match(r"node (\d+)", line).group(1)) for line in lines[1:]] == [16, 17, 18, 19, 20]
    assert any("failed" in line or "invalid" in line for line in lines)
    assert all(len(line) <= 140 for line in lines)


def test_improvement_ideas_are_records_and_a_model_change_is_skipped_for_a_script_that_uses_it():
    ideas = IMPROVEMENT_IDEAS["classification"]
    model = ideas[0]
    assert (model.kind, model.target) == ("model", "HistGradientBoostingClassifier")
    assert model.text == ("Replace the model with sklearn.ensemble.HistGradientBoostingClassifier(max_iter=300, "
                          "learning_rate=0.05, random_state=0).")
    assert not model.applies_to("model = HistGradientBoostingClassifier(max_iter=100)")
    assert model.applies_to("model = RandomForestClassifier()") and model.applies_to(None)
    tuning = ideas[1]
    assert tuning.kind == "tuning" and tuning.target is None and tuning.applies_to(good_script())
    assert all(str(idea) == idea.text for idea in ideas + list(METRIC_IDEAS.values()))


# --------------------------------------------------------------------------- the strategy, end to end


def test_drafts_ask_for_different_approaches_and_name_the_earlier_ones(tmp_path):
    result, backend = run_tree(tmp_path, Responder(), iterations=3)
    drafts = asks(backend)[:3]
    approaches = [re.search(r"this approach: ([^,]+),", d).group(1) for d in drafts]
    assert len(set(approaches)) == 3, approaches
    assert "other drafts" not in drafts[0]
    assert approaches[0] in drafts[1] and approaches[0] in drafts[2] and approaches[1] in drafts[2]
    # with the example shown, a draft is a concrete swap of the example's model
    example_model = re.search(r"in place of (.+\))\.", drafts[0]).group(1)
    assert example_model in good_script()
    records = journal_records(result.run_dir)
    assert [r["kind"] for r in records] == ["draft"] * 3 and all(r["parent"] is None for r in records)
    assert all(r["round"] == 1 for r in records)
    assert result.final_valid


def test_with_the_baseline_drafts_try_other_families_first_and_are_told_what_the_new_class_does_not_take(tmp_path):
    result, backend = run_tree(tmp_path, Responder(), iterations=3, baseline=True)
    drafts = [a for a in asks(backend) if "Replace the model with" in a]
    models = [re.search(r"Replace the model with [\w.]+\.(\w+)\(", d).group(1) for d in drafts]
    assert models[:2] == ["RandomForestClassifier", "LogisticRegression"], "the baseline is the gradient boosting draft"
    assert "RandomForestClassifier takes no categorical_features argument" in drafts[0]
    # with the example shown and functions edits (the defaults), a draft is an edit of the baseline: the model
    # writes make_model only
    assert "Replace the model with sklearn.ensemble.RandomForestClassifier(" in drafts[0]
    assert "import RandomForestClassifier from sklearn.ensemble" in drafts[0]
    assert "only the complete new version of the function `make_model`" in drafts[0]
    records = {r["index"]: r for r in journal_records(result.run_dir)}
    assert [records[i]["kind"] for i in (1, 2)] == ["draft", "draft"]
    assert records[1]["parent"] == 0 and records[1]["idea_source"] == "harness"


def test_a_draft_made_as_an_edit_of_the_baseline_applies_a_make_model_reply(tmp_path):
    forest = ("```python\nfrom sklearn.ensemble import RandomForestClassifier\n\n\ndef make_model(categorical):\n"
              "    return RandomForestClassifier(n_estimators=50, random_state=0)\n```")
    backend = ScriptedBackend([forest])
    result = run(WINE, config=RunConfig(out_dir=tmp_path / "runs", strategy="tree", iterations=1, timeout=60,
                                        confirm_folds=0), backend=backend)
    draft = {r["index"]: r for r in journal_records(result.run_dir)}[1]
    assert draft["valid"] and draft["parent"] == 0 and draft["edit_format"] == "functions"
    assert "RandomForestClassifier(n_estimators=50" in draft["code"] and "def make_features" in draft["code"]
    assert "HistGradientBoostingClassifier(" not in draft["code"].split("def make_model")[1]


def test_a_failed_draft_is_repaired_with_its_error_and_a_diagnosis(tmp_path):
    result, backend = run_tree(tmp_path, Responder(broken=(2,)), iterations=5)
    records = journal_records(result.run_dir)
    repair = next(r for r in records if r["kind"] == "repair")
    assert repair["parent"] == 2 and repair["valid"]
    assert records[1]["reflection"] == DIAGNOSIS
    repair_ask = next(a for a in asks(backend) if "Fix the script above" in a)
    assert "cultivarr" in repair_ask and DIAGNOSIS in repair_ask
    assert "node 2 (draft: a random forest): failed: KeyError" in repair_ask  # the memory names the failure


def test_repairs_stop_at_the_debug_depth(tmp_path):
    # every answer after the first draft fails: the failing drafts get at most one repair each
    result, _ = run_tree(tmp_path, Responder(broken=tuple(range(2, 50))), iterations=8, drafts=2, debug_depth=1)
    records = {r["index"]: r for r in journal_records(result.run_dir)}
    for r in records.values():
        if r["kind"] == "repair":
            assert records[r["parent"]]["kind"] != "repair", "a repair of a repair exceeds --debug-depth 1"


def test_improvements_make_one_untried_change_each(tmp_path):
    result, backend = run_tree(tmp_path, Responder(), iterations=6, drafts=2)
    records = journal_records(result.run_dir)
    improvements = [r for r in records if r["kind"] == "improve"]
    assert len(improvements) == 4
    by_parent: dict[int, list[str]] = {}
    for r in improvements:
        assert r["idea"] or r["idea_source"] == "model", "each improvement names its change, or is the model's choice"
        by_parent.setdefault(r["parent"], []).append(r["idea"] or f"own choice {r['index']}")
    for ideas in by_parent.values():
        assert len(set(ideas)) == len(ideas), "siblings try different changes"
    improve_asks = [a for a in asks(backend) if "Change to make now" in a]
    assert len(improve_asks) == 4
    assert all("What was tried so far" in a for a in improve_asks)


def test_once_the_ideas_are_used_up_the_model_chooses_and_is_told_what_was_tried(tmp_path):
    # one draft, so every improvement is of node 1: the 3 listed ideas that apply (the script already uses
    # gradient boosting), then the model's own choices, 6 improvements in all
    result, backend = run_tree(tmp_path, Responder(same_score=True), iterations=8, drafts=1, breadth=1)
    records = journal_records(result.run_dir)
    assert [r["parent"] for r in records[1:]] == [1, 1, 1, 1, 1, 1, 2], "node 1 is exhausted after 6 improvements"
    free = [a for a in asks(backend) if "of your own choice" in a]
    assert len(free) == 3 and "not to repeat" in free[0]
    assert [r["idea_source"] for r in records[1:7]] == ["harness"] * 3 + ["model"] * 3
    for record in records[1:4]:
        assert record["idea"][:60] in free[0]


def test_the_journal_of_a_tree_run_is_complete(tmp_path):
    result, _ = run_tree(tmp_path, Responder(broken=(1,)), iterations=5)
    lines = journal_lines(result.run_dir)
    complete = [r for r in lines if not r["pending"]]
    assert sorted({r["index"] for r in complete}) == [1, 2, 3, 4, 5]
    for index in range(1, 6):  # a later line for an index only adds to it (the reflection), never redoes it
        again = [(r["code"], r["started_at"], r["finished_at"]) for r in complete if r["index"] == index]
        assert len(set(again)) == 1
    assert all(r["finished_at"] >= r["started_at"] for r in complete)
    assert {r["index"] for r in lines if r["pending"]} == {1, 2, 3, 4, 5}, "every script is journaled before it runs"
    meta = json.loads((result.run_dir / "run.json").read_text())
    assert meta["config"]["strategy"] == "tree" and meta["result"]["attempts"] == 5
