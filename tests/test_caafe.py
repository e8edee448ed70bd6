"""The CAAFE engine with a scripted model and the real sandbox: accept / reject decisions, regression and
classification, errors fed back, timeouts, bounded retries, and the solution-prompt variants."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabcoder.backends import ScriptedBackend
from tabcoder.caafe import (
    CaafeResult, CaafeSettings, include_feature_code, run_caafe, solution_guidance,
)
from tabcoder.caafe.code import BlockError, compose, parse_reply
from tabcoder.caafe.cv import CrossValidator, CvScore
from tabcoder.caafe.transformer import load_function
from tabcoder.errors import ConfigError, LLMError, TaskError
from tabcoder.prompting import fence
from tabcoder.sandbox import LocalSandbox

from caafe_helpers import DROP_C, FAST, NOISE, RATIO, make_task


@pytest.fixture(scope="module")
def sandbox() -> LocalSandbox:
    return LocalSandbox()


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    return make_task(tmp_path_factory.mktemp("binary"), "binary")


@pytest.fixture(scope="module")
def regression(tmp_path_factory):
    return make_task(tmp_path_factory.mktemp("regression"), "regression")


def caafe(task, replies, sandbox, tmp_path: Path, settings: CaafeSettings = FAST, n: int | None = None, **kw):
    backend = ScriptedBackend(replies)
    result = run_caafe(task, task.train, backend=backend, sandbox=sandbox, seed=0, settings=settings,
                       n_features=len(replies) if n is None else n, workdir=tmp_path / "caafe", **kw)
    return result, backend


# --------------------------------------------------------------------------- decisions


def test_ratio_is_kept_and_noise_discarded_for_classification(binary, sandbox, tmp_path):
    events = []
    result, backend = caafe(binary, [RATIO, NOISE], sandbox, tmp_path, on_event=lambda k, d: events.append(k))
    ratio, noise = result.proposals
    assert ratio.kept and ratio.added == ["a_over_b"] and ratio.gain > 0.01 and ratio.t >= FAST.min_t
    assert not noise.kept and noise.error is None and noise.score_without == ratio.score_with
    assert result.final > result.base and result.final_score == ratio.score_with
    assert result.added == ["a_over_b"] and result.metric == "accuracy"
    assert events == ["caafe_start", "caafe_proposal", "caafe_proposal", "caafe_end"]
    # the model is told the outcome of the first proposal before it writes the second
    second_prompt = backend.history[1][-1]["content"]
    assert "+a_over_b: kept (accuracy" in second_prompt and "a_over_b" in second_prompt.split("Columns of `df` now")[1]
    # the accepted code is one function that applies to the test rows as to the train rows
    transformed = load_function(result.feature_code)(binary.test[binary.feature_columns])
    assert list(transformed.columns) == ["a", "b", "c", "a_over_b"]
    np.testing.assert_allclose(transformed["a_over_b"], binary.test["a"] / binary.test["b"])


def test_regression_uses_rmse_direction_and_records_drops(regression, sandbox, tmp_path):
    result, _ = caafe(regression, [NOISE, RATIO, DROP_C], sandbox, tmp_path)
    noise, ratio, drop = result.proposals
    assert not noise.kept and noise.gain < FAST.min_gain
    assert ratio.kept and ratio.score_with < ratio.score_without  # rmse: lower is better
    assert drop.dropped == ["c"] and drop.added == [] and drop.error is None
    assert result.final_score < result.base_score and "a_over_b" in result.columns_out


def test_multiclass_with_probability_metric(tmp_path, sandbox):
    task = make_task(tmp_path / "multi", "multiclass", rows=300)
    task = dataclasses.replace(task, metric="log_loss")
    result, _ = caafe(task, [RATIO], sandbox, tmp_path)
    assert result.metric == "log_loss" and not result.greater_is_better
    assert result.proposals[0].kept and result.final_score < result.base_score


def test_max_kept_stops_early(binary, sandbox, tmp_path):
    settings = dataclasses.replace(FAST, max_kept=1)
    result, backend = caafe(binary, [RATIO, NOISE, NOISE], sandbox, tmp_path, settings=settings)
    assert len(result.proposals) == 1 and "max_kept" in result.stop_reason and backend.remaining == 2


# --------------------------------------------------------------------------- errors are feedback


def test_broken_code_timeouts_and_repeats_are_fed_back_and_bounded(binary, sandbox, tmp_path):
    replies = [
        "I would add a ratio.",                                   # no code
        fence("df['x'] = (df['a'] +"),                           # syntax error
        fence("df['x'] = df['no_such_column'] * 2"),              # runtime error
        fence("while True:\n    df['x'] = 1"),                    # runs forever
        fence("df['x'] = df['no_such_column'] * 2"),              # the same code again
        fence("df['x'] = df['a'] - df['a'].mean()"),              # depends on the other rows
        fence("df['y'] = df['a'] * 2"),                           # named like the target
        fence("df['flag'] = (df['a'] == 'high').astype(int)"),    # the same value in every row
        fence("df = df.sort_values('a')\ndf['s'] = 1.0"),      # reorders the rows
        RATIO,
    ]
    settings = dataclasses.replace(FAST, timeout=2)
    result, backend = caafe(binary, replies, sandbox, tmp_path, settings=settings)
    errors = [p.error for p in result.proposals]
    assert "no code" in errors[0]
    assert "not valid Python" in errors[1]
    assert "KeyError" in errors[2] and "df has no column `no_such_column`" in errors[2]
    assert "longer than 2 seconds" in errors[3]
    assert "same code as proposal 3" in errors[4]
    assert "depend on the other rows" in errors[5]
    assert "like the task's target" in errors[6]
    assert "same value in every row" in errors[7]
    assert "changed the order or the index" in errors[8]
    assert result.proposals[-1].kept and len(backend.history) == len(replies)  # one call per proposal
    # each error reaches the model with the failing code, and the temperature rises while it keeps failing
    third = backend.history[3][-1]["content"]
    assert "The last code failed: KeyError" in third and "no_such_column" in third
    temperatures = [call.options["temperature"] for call in backend.history]
    assert temperatures[0] == FAST.temperature and temperatures[3] > temperatures[1] > temperatures[0]
    assert max(temperatures) <= 1.0


def test_feature_code_never_sees_the_target_or_the_id(binary, sandbox, tmp_path):
    result, _ = caafe(binary, [fence("df['leak'] = df['y']")], sandbox, tmp_path)
    assert "KeyError" in result.proposals[0].error
    given = pd.read_parquet(tmp_path / "caafe" / "001" / "input" / "features.parquet")
    assert list(given.columns) == ["a", "b", "c"]
    again, _ = caafe(binary, [RATIO], sandbox, tmp_path)  # the same folder again: earlier workspaces are replaced
    assert again.proposals[0].kept


def test_unreachable_model_is_retried_a_bounded_number_of_times(binary, sandbox, tmp_path):
    waits = []
    down = LLMError("connection refused")
    settings = dataclasses.replace(FAST, llm_retries=2, retry_wait=1.0)
    backend = ScriptedBackend([down, down, RATIO, down, down, down, NOISE])
    result = run_caafe(binary, binary.train, backend=backend, sandbox=sandbox, n_features=3, settings=settings,
                       workdir=tmp_path / "w", sleep=waits.append)
    assert len(result.proposals) == 1 and result.proposals[0].kept
    assert result.stop_reason.startswith("the model failed") and backend.remaining == 1
    assert waits == [1.0, 2.0, 1.0, 2.0]  # doubling waits, two retries per proposal
    with pytest.raises(LLMError):  # nothing to show for it: the error reaches the caller
        run_caafe(binary, binary.train, backend=ScriptedBackend([down] * 3), sandbox=sandbox, n_features=2,
                  settings=settings, workdir=tmp_path / "w2", sleep=waits.append)


def test_bad_arguments_are_typed_errors(binary, sandbox, tmp_path):
    with pytest.raises(ConfigError, match="integer >= 1"):
        caafe(binary, [RATIO], sandbox, tmp_path, n=0)
    with pytest.raises(ConfigError, match="folds"):
        caafe(binary, [RATIO], sandbox, tmp_path, settings=dataclasses.replace(FAST, folds=1))
    with pytest.raises(TaskError, match="lack the column"):
        run_caafe(binary, binary.train.drop(columns=["y"]), backend=ScriptedBackend([RATIO]), sandbox=sandbox,
                  n_features=1)


# --------------------------------------------------------------------------- pieces


def test_parse_reply_accepts_what_small_models_write():
    bare = parse_reply("Feature: r: ratio\nUsefulness: helps\ndf['r'] = df['a'] / df['b']")
    assert bare.code.startswith("# Feature: r: ratio") and bare.reason == "r: ratio; helps"
    function = parse_reply(fence("def add_ratio(df):\n    df['r'] = df['a'] / df['b']\n    return df"))
    assert function.code.endswith("df = add_ratio(df)")
    loading = parse_reply(fence("df = pd.read_csv('train.csv')\ndf['r'] = df['a'] + 1"))
    assert "read_csv" not in loading.code
    assert parse_reply("# Feature: r\ndf['r'] = df['a'] + 1\n```").code == "# Feature: r\ndf['r'] = df['a'] + 1"
    with pytest.raises(BlockError, match="never uses `df`"):
        parse_reply(fence("x = 1"))
    with pytest.raises(BlockError, match="not valid Python"):
        parse_reply(fence("return df"))  # would end add_features early


def test_composed_function_runs_blocks_in_order_on_a_copy():
    blocks = [parse_reply(fence("# first\ndf['s'] = df['a'] + 1")), parse_reply(fence("df['t'] = df['s'] * 2"))]
    module = compose(blocks, title="demo")
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    out = load_function(module)(frame)
    assert list(out["t"]) == [4.0, 6.0] and list(frame.columns) == ["a"]
    assert load_function(compose([]))(frame).equals(frame)


def test_cv_scores_are_direction_aware_and_folds_stratified(binary):
    cv = CrossValidator(binary, binary.train, folds=3, repeats=2, seed=0)
    assert len(cv.splits) == 6
    shares = [np.mean(cv.y[valid] == "yes") for _, valid in cv.splits]
    assert max(shares) - min(shares) < 0.02  # stratified
    for fit, valid in cv.splits[:3]:
        assert not set(fit) & set(valid) and len(fit) + len(valid) == len(cv.data)
    low, high = CvScore("rmse", False, (1.0, 1.0, 1.2)), CvScore("rmse", False, (2.0, 2.2, 2.1))
    assert low.score > high.score and low.gain_over(high) > 0 and low.paired_t(high) > 0
    assert CvScore("rmse", False, (1.0, 1.0)).paired_t(CvScore("rmse", False, (1.0, 1.0))) == 0.0


def test_large_fits_are_cross_validated_on_a_stratified_sample(binary):
    cv = CrossValidator(binary, binary.train, folds=3, repeats=1, max_rows=200)
    assert len(cv.data) == 200 and set(cv.data["id"]) <= set(binary.train["id"])
    assert abs(np.mean(cv.y == "yes") - np.mean(binary.train["y"] == "yes")) < 0.02


# --------------------------------------------------------------------------- the solution prompt


def kept_result(binary, sandbox, tmp_path) -> CaafeResult:
    return caafe(binary, [RATIO], sandbox, tmp_path)[0]


def test_solution_guidance_variants(binary, sandbox, tmp_path):
    result = kept_result(binary, sandbox, tmp_path)
    assert solution_guidance(result, "none") == "" and solution_guidance(None, "usage") == ""
    usage = solution_guidance(result, "usage")
    assert "already defined at the top of your script" in usage and "`a_over_b`" in usage
    assert "add_features(train[features])" in usage and "('y', 'id')" in usage
    example = solution_guidance(result, "example")
    assert "def add_features(df" in example and "df['a_over_b']" in example
    with pytest.raises(ConfigError, match="none, example, usage"):
        solution_guidance(result, "sometimes")
    nothing = dataclasses.replace(result, proposals=[dataclasses.replace(result.proposals[0], kept=False)],
                                  blocks=[])
    for variant in ("usage", "example"):
        text = solution_guidance(nothing, variant)
        assert "none improved" in text and "+a_over_b" in text


def test_include_feature_code_makes_the_script_standalone(binary, sandbox, tmp_path):
    result = kept_result(binary, sandbox, tmp_path)
    script = ("from __future__ import annotations\nimport pandas as pd\n"
              "X = add_features(pd.DataFrame({'a': [1.0], 'b': [2.0], 'c': [0.0]}))\nresult = X['a_over_b'][0]\n")
    combined = include_feature_code(result, script)
    assert combined.startswith("from __future__ import annotations\n")
    namespace: dict = {}
    exec(compile(combined, "solution.py", "exec"), namespace)
    assert namespace["result"] == 0.5
    defining = "def add_features(df):\n    return df\nadd_features(1)\n"
    assert include_feature_code(result, defining) == defining
    assert include_feature_code(result, "print('no call')") == "print('no call')"
    assert include_feature_code(None, script) == script
