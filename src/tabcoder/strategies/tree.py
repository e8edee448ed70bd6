"""Tree search (AIDE-style): several drafts with different modelling approaches, repairs of buggy nodes
up to a depth, and improvements of good nodes by one atomic change at a time; a `Policy` object picks
which nodes to expand.

The search runs in rounds. A round's actions are planned from the tree as it stands when the round
starts; their scripts are written one after the other (one model, one context) and each is evaluated as
soon as it is written, up to `--workers` at once, while the model writes the next one. The next round is
planned when the round's results are in. Every prompt of a round is built from the round's snapshot, and
attempts complete in index order, so the journal's content does not depend on the number of workers.

What the model is told:
- a draft: the approach to use (a different model family per draft) and the approaches of the others;
  with the example shown and the functions edit format (the defaults), a draft is an edit of the harness's
  baseline (attempt 0, its parent): the model writes the function that makes the model, nothing else;
- a repair: the failed script, its feedback, the model's own diagnosis (a reflection call) and the memory;
- an improvement: the script, its score, the one change to make (the next untried idea for that node,
  or, once they are used up, a change of the model's own choice other than those tried on the node) and
  the memory; a node that has had all its improvements is exhausted and the policy looks elsewhere;
- the memory: a bounded summary of what was tried and how it scored, failures included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from tabcoder.events import RoundStart, emit_event
from tabcoder.journal import Attempt, Journal, LLMCall
from tabcoder.prompting import Approach, Messages, approach_label
from tabcoder.strategies.common import (SearchStrategy, edited_script, first_change, outcome, repair_target,
                                        shown_code, summarise)
from tabcoder.strategies.policy import Action, GreedyPolicy, Policy, TreeView


@dataclass
class _Round:
    """A round's plan, the snapshot it was planned from, and the attempts written in it so far."""

    number: int
    view: TreeView
    memory: str
    actions: list[Action]
    written: list[Attempt] = field(default_factory=list)


@dataclass
class TreeSearch(SearchStrategy):
    """Draft, repair, improve, as chosen by `policy`; see the module docstring."""

    policy: Policy = field(default_factory=GreedyPolicy)
    drafts: int = 5  # the baseline and one draft per model family (DRAFT_APPROACHES)
    debug_depth: int = 2
    breadth: int = 2  # actions per round once the drafts are written
    memory_size: int = 8
    free_changes: int = 2  # improvements of the model's own choice a node gets after the listed ideas

    def _search(self, journal: Journal) -> str:
        number = max([a.round or 0 for a in journal.attempts] + [0])
        while True:
            reason = self._stop_reason(journal)
            if reason:
                return reason
            number += 1
            state = self._plan(journal, number)
            if not state.actions:
                return "nothing left to expand"
            reason = self._round(journal, state)
            self._queue.wait_all()
            if reason:
                return reason

    def _plan(self, journal: Journal, number: int) -> _Round:
        view = TreeView(self._buildable(journal), self.drafts, self.debug_depth,
                        max_improvements=len(self.builder.ideas()) + self.free_changes)
        best = view.best()
        memory = self.builder.memory(summarise(view.attempts, self.memory_size, name="node"),
                                     None if best is None else f"node {best.index}, {best.score_value}")
        actions = self.policy.plan(view, self.breadth)
        emit_event(self.on_event, RoundStart(round=number, actions=[(a.kind, a.parent) for a in actions]))
        return _Round(number, view, memory, actions)

    def _round(self, journal: Journal, state: _Round) -> str | None:
        """Write and submit the round's scripts; returns a stop reason if a budget ran out on the way."""
        for position, action in enumerate(state.actions):
            reason = self._stop_reason(journal) if position else None
            if reason:
                return reason
            attempt = self._expand(action, journal, state)
            state.written.append(attempt)
            self._queue.submit(attempt)
            self._queue.collect()
        return None

    # -- one expansion ---------------------------------------------------------------------------------
    def _expand(self, action: Action, journal: Journal, state: _Round) -> Attempt:
        index, started = journal.next_index, self.elapsed()
        calls: list[LLMCall] = []
        if action.kind == "draft":
            approach, earlier = self._approach(state)
            baseline = journal.baseline()
            if self.builder.show_example and self.edit_format == "functions" and baseline is not None \
                    and baseline.valid and baseline.code:
                # an edit of the baseline: only the function that makes the model is the model's to write
                messages = self.builder.draft_swap(approach, shown_code(baseline, journal), baseline.feedback,
                                                   memory=state.memory)
                return self._write(index, baseline.index, "draft", messages, calls, started=started,
                                   idea=str(approach), round=state.number, base=baseline.code,
                                   idea_source="harness", history=state.view.attempts, function="make_model",
                                   imports=approach.imports)
            messages = self.builder.draft_with(approach, earlier)
            return self._write(index, None, "draft", messages, calls, started=started, idea=str(approach),
                               round=state.number, history=state.view.attempts)
        parent = cast(Attempt, journal.get(cast(int, action.parent)))  # a repair or improvement has a parent
        script = edited_script(parent, journal)
        edit_format = self.edit_format if script is not None else "whole"
        messages, idea, source, function = self._ask(action, parent, state, calls, journal, edit_format)
        return self._write(index, parent.index, action.kind, messages, calls, started=started, idea=idea,
                           round=state.number, base=script, idea_source=source, history=state.view.attempts,
                           function=function)

    def _ask(self, action: Action, parent: Attempt, state: _Round, calls: list[LLMCall],
             journal: Journal, edit_format: str) -> tuple[Messages, str | None, str | None, str | None]:
        """The messages of a repair or improvement, its idea, who named the idea ("harness": the list of
        generic ideas; "model": a change of the model's own choice), and the one function asked for (if one)."""
        shown = shown_code(parent, journal)
        if action.kind == "repair":
            diagnosis = self._reflect(parent, True, calls, journal)
            function = repair_target(parent, journal) if edit_format == "functions" else None
            return self.builder.debug(shown, parent.feedback, reflection=diagnosis, memory=state.memory,
                                      edit_format=edit_format, function=function), None, None, function
        idea = self._improvement(parent, state)
        tried = [] if idea else self._tried(parent, state)
        messages = self.builder.improve(shown, parent.feedback, idea=idea, memory=state.memory, tried=tried,
                                        edit_format=edit_format)
        function = self.builder.edit_target(idea, shown) if edit_format == "functions" else None
        return messages, idea, "harness" if idea else "model", function

    def _approach(self, state: _Round) -> tuple[Approach, list[str]]:
        """The next draft's approach (the next family in turn) and the labels of the other drafts'. The baseline
        counts as the first draft (gradient boosting, the first family), so with it the drafts begin with the
        next family."""
        drafts = state.view.drafts + [a for a in state.written if a.kind == "draft"]
        approaches = self.builder.approaches()
        approach = approaches[len(drafts) % len(approaches)]
        earlier = [approach_label(d.idea) for d in drafts if d.idea]
        return approach, list(dict.fromkeys(e for e in earlier if e != approach.label))

    def _tried(self, node: Attempt, state: _Round) -> list[str]:
        """What the node's earlier improvements did and how it went, for a change of the model's own choice."""
        graded = [(c, outcome(c)) for c in state.view.children(node)]  # from the round's snapshot only
        graded += [(c, "not graded yet") for c in state.written if c.parent == node.index]
        lines = []
        for child, result in graded:
            if child.kind == "improve":
                what = child.idea or first_change(node.code, child.code) or "the script unchanged"
                lines.append(f"{what[:110]} ({result})")
        return lines

    def _improvement(self, node: Attempt, state: _Round) -> str | None:
        """The first idea not yet applied on the node's path nor tried on it, and not already in its code."""
        tried = {a.idea for a in self._path(node, state.view) if a.kind == "improve"}
        tried |= {a.idea for a in state.view.children(node) + state.written if a.parent == node.index}
        for idea in self.builder.ideas():
            if idea.text not in tried and idea.applies_to(node.code):
                return idea.text
        return None

    @staticmethod
    def _path(node: Attempt, view: TreeView) -> list[Attempt]:
        by_index = {a.index: a for a in view.attempts}
        path = [node]
        while path[-1].parent in by_index:
            path.append(by_index[path[-1].parent])
        return path
