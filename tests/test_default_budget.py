"""The default budget is the wall time of the whole run; an explicit time budget is not cut short by an
attempt cap; a run without a time budget needs another end."""

from __future__ import annotations

import types

import pytest

from tabcoder import RunConfig, run
from tabcoder.config import DEFAULT_TIME_BUDGET, parse_duration
from tabcoder.errors import ConfigError

from support import WINE, Responder, tabcoder


def test_the_default_run_is_five_minutes_of_wall_time_with_no_attempt_cap():
    config = RunConfig()
    assert config.time_budget == DEFAULT_TIME_BUDGET == 300.0
    assert config.iterations is None


@pytest.mark.parametrize("word", ["none", "off", "Unlimited", " NONE "])
def test_words_for_no_time_budget(word):
    assert parse_duration(word) is None


def test_a_run_without_any_end_is_refused_with_what_to_give():
    with pytest.raises(ConfigError, match="--iterations N or --token-budget N"):
        RunConfig(time_budget=None)
    assert RunConfig(time_budget="none", iterations=3).time_budget is None
    assert RunConfig(time_budget=None, token_budget=1000).iterations is None


def test_an_explicit_time_budget_is_not_cut_short_by_a_default_attempt_cap(tmp_path):
    responder = Responder()
    backend = responder.backend()

    def clock() -> float:  # every model call takes ten seconds of the run's time; scripts take none
        return 10.0 * len(backend.history)

    result = run(WINE, config=RunConfig(baseline=False, out_dir=tmp_path, time_budget=200, timeout=60,
                                        confirm_folds=0),
                 backend=backend, clock=clock)
    assert "time budget" in result.stop_reason
    assert result.attempts > 4  # the old default cap was 4 attempts
    assert result.final_valid
    # an attempt costs two calls (code, reflection): it stops once the longest attempt no longer fits
    assert 10.0 * len(backend.history) <= 200 + 20


def test_an_attempt_cap_still_ends_a_run_first_when_given(tmp_path):
    responder = Responder()
    result = run(WINE, config=RunConfig(baseline=False, out_dir=tmp_path, iterations=2, timeout=60, confirm_folds=0),
                 backend=responder.backend())
    assert result.attempts == 2 and "iteration budget (2)" in result.stop_reason


def test_the_command_line_shows_the_default_and_refuses_a_run_with_no_end(tmp_path):
    shown = tabcoder("run", "--help")
    assert "5m" in shown.stdout and "none" in shown.stdout
    refused = tabcoder("run", WINE, "--time-budget", "none", "--model", "replay:/nonexistent.jsonl",
                       "--out", tmp_path)
    assert refused.returncode == 2
    assert "--iterations N or --token-budget N" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_the_reserve_for_one_more_attempt_is_the_longest_model_attempt_not_the_mean():
    from tabcoder.journal import Attempt, Journal, LLMCall
    from tabcoder.strategies.common import attempt_reserve

    def attempt(index: int, kind: str, model: float, run: float) -> Attempt:
        calls = [LLMCall("code", index, 10, 10, model)] if model else []
        return Attempt(index, None, kind, [], "", "print(1)", calls=calls, run_seconds=run)

    journal = Journal()
    journal.attempts = [attempt(0, "baseline", 0, 3.0)]
    assert attempt_reserve(journal) == 0.0, "the baseline calls no model"
    journal.attempts += [attempt(1, "draft", 80.0, 2.0), attempt(2, "draft", 200.0, 5.0), attempt(3, "draft", 30.0, 2.0)]
    assert attempt_reserve(journal) == 205.0


def test_the_first_calls_prompt_evaluation_does_not_count_while_the_prefix_cache_works():
    """The first call evaluates the whole task prompt (here 90 of its 100 s); with a backend that keeps a
    prefix cache (it reports cached prompt tokens) later calls reuse it, so the reserve for one more attempt
    and the longest call leave those 90 s out, until a later call is seen to evaluate most of its prompt
    afresh. A backend that reports no cache gets no discount."""
    from tabcoder.journal import Attempt, Journal, LLMCall
    from tabcoder.strategies.common import attempt_reserve, longest_call, prompt_seconds

    def attempt(index: int, seconds: float, prompt: float | None, cached: int | None) -> Attempt:
        call = LLMCall("code", index, 3000, 30, seconds, prompt_seconds=prompt, cached_prompt_tokens=cached)
        return Attempt(index, 0, "draft", [], "", "print(1)", calls=[call], run_seconds=4.0)

    journal = Journal()
    journal.attempts = [attempt(1, 100.0, 90.0, 0)]
    assert attempt_reserve(journal) == 14.0 and longest_call(journal, "code") == 10.0
    journal.attempts.append(attempt(2, 15.0, 5.0, 2900))
    assert attempt_reserve(journal) == 19.0 and longest_call(journal, "code") == 15.0 and prompt_seconds(journal) == 5.0
    journal.attempts.append(attempt(3, 20.0, 10.0, 400))  # a prompt evaluated afresh: the discount ends
    assert attempt_reserve(journal) == 104.0 and longest_call(journal, "code") == 100.0
    journal.attempts = [attempt(1, 100.0, None, None)]  # a backend that reports no cache
    assert attempt_reserve(journal) == 104.0


def test_a_reply_under_a_time_budget_may_take_only_the_tokens_that_fit_in_the_time_left():
    """At 10 tokens/s (the fastest reply; the first call also waited 30 s for a shared model), with 60 s left
    of the budget, no finish reserve and prompts of 5 s: 550 tokens; never fewer than the floor; the
    configured limit when it is lower; no change without a budget."""
    from tabcoder.budget import Budget
    from tabcoder.journal import Attempt, Journal, LLMCall
    from tabcoder.strategies.common import MIN_REPLY_TOKENS, SearchStrategy

    class Strategy(SearchStrategy):
        def _search(self, journal: Journal) -> str:  # not run here
            return ""

    strategy = Strategy.__new__(Strategy)
    journal = Journal()
    first = LLMCall("code", 1, 3000, 100, 130.0, prompt_seconds=90.0, cached_prompt_tokens=0)  # 30 s waiting
    later = LLMCall("code", 2, 3000, 100, 15.0, prompt_seconds=5.0, cached_prompt_tokens=2900)
    journal.attempts = [Attempt(i, 0, "draft", [], "", "print(1)", calls=[c], run_seconds=1.0)
                        for i, c in ((1, first), (2, later))]
    strategy._queue = types.SimpleNamespace(journal=journal)
    strategy.budget = Budget(iterations=None, seconds=300.0)
    strategy.elapsed = lambda: 240.0
    assert strategy._affordable(1536) == 550
    assert strategy._affordable(256) == 256
    strategy.elapsed = lambda: 299.0
    assert strategy._affordable(1536) == MIN_REPLY_TOKENS
    strategy.budget = Budget(iterations=None, seconds=None)
    assert strategy._affordable(1536) == 1536

def test_a_model_call_that_would_end_after_the_budget_is_not_started(tmp_path):
    """Reflexion: each code call takes 10 s of the run's time and each reflection 10 s, until one reflection takes 120 s:
    the script call after it would end past the budget, so it is not started, and the run ends on time."""
    import dataclasses

    from tabcoder.backends.base import Completion

    responder = Responder()
    inner = responder.backend()
    now = [0.0]
    reflections = [0]

    class Timed:
        name = "scripted"

        def complete(self, messages, settings=None) -> Completion:
            reflecting = "Reflect in two to four short sentences" in messages[-1]["content"]
            reflections[0] += reflecting
            took = 120.0 if reflecting and reflections[0] == 4 else 10.0
            now[0] += took
            return dataclasses.replace(inner.complete(messages, settings=settings), seconds=took)

        def __getattr__(self, name):
            return getattr(inner, name)

    result = run(WINE, config=RunConfig(strategy="reflexion", baseline=False, out_dir=tmp_path, time_budget=200,
                                        timeout=60, confirm_folds=0, ensemble=False),
                 backend=Timed(), clock=lambda: now[0])
    assert result.stop_reason.startswith("time budget (200 s) reached: a code call takes up to 10 s")
    assert now[0] <= 200, f"the run's model calls ended at {now[0]} s of a 200 s budget"
    assert result.final_valid
    code_calls = len(inner.history) - reflections[0]
    assert result.attempts == code_calls == 4, "the attempt whose script call was not started is not written"
