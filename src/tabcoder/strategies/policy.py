"""Which nodes of the solution tree to expand next: a small policy object, so that search strategies can
be compared with everything else fixed.

A policy sees a `TreeView` (the attempts as nodes, with their parents) and returns the next round of
`Action`s: draft a new solution, repair a buggy node, or improve a working one. Ideas (which approach,
which change) are the strategy's business, not the policy's. Policies are deterministic: the same tree
gives the same plan, which keeps parallel and resumed runs identical to serial ones.

- `GreedyPolicy` (default, AIDE-like): draft until there are `drafts` drafts; repair a buggy leaf that
  is worth it (a draft whose approach never ran, or a failed change to the best node) while its repair
  chain is shorter than `debug_depth` (once something works, at most one repair per round); fill the
  round with improvements of the best node that is not exhausted (`max_improvements` improvements
  already). With nothing to improve and nothing left to repair, draft again (the next approach).
- `UCBPolicy`: every expandable node gets `value + c * sqrt(ln N / visits)`, where value is the best
  rank-normalised score in its subtree (1 = best node, 0 = failed) and visits the subtree's size; the
  highest is expanded. Picking a node counts as a visit, so a round spreads over several nodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tabcoder.errors import ConfigError
from tabcoder.journal import Attempt

POLICIES = ("greedy", "ucb")


@dataclass(frozen=True)
class Action:
    """One expansion: `kind` is "draft" (parent None), "repair" (parent buggy) or "improve" (parent valid)."""

    kind: str
    parent: int | None = None


@dataclass
class TreeView:
    """The solution tree: attempts are nodes, `parent` links them; drafts are the root's children."""

    attempts: list[Attempt]
    drafts_wanted: int
    debug_depth: int
    max_improvements: int | None = None  # improvements a node may get before it counts as exhausted
    _children: dict[int | None, list[Attempt]] = field(init=False, repr=False)
    _by_index: dict[int, Attempt] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_index = {a.index: a for a in self.attempts}
        self._children = {}
        for attempt in self.attempts:
            self._children.setdefault(attempt.parent, []).append(attempt)

    def children(self, node: Attempt | None) -> list[Attempt]:
        return self._children.get(None if node is None else node.index, [])

    @property
    def drafts(self) -> list[Attempt]:
        """The root's children: the model's drafts and the harness's baseline."""
        return [a for a in self.attempts if a.kind in ("draft", "baseline")]

    @property
    def valid(self) -> list[Attempt]:
        return [a for a in self.attempts if a.valid]

    def best(self) -> Attempt | None:
        valid = self.valid
        return max(valid, key=lambda a: (a.score_value, -a.index)) if valid else None

    def improvable(self) -> list[Attempt]:
        """Valid nodes that have not had `max_improvements` improvements yet."""
        if self.max_improvements is None:
            return self.valid
        return [a for a in self.valid
                if sum(c.kind == "improve" for c in self.children(a)) < self.max_improvements]

    def best_improvable(self) -> Attempt | None:
        open_nodes = self.improvable()
        return max(open_nodes, key=lambda a: (a.score_value, -a.index)) if open_nodes else None

    def repairs_above(self, node: Attempt) -> int:
        """How many repairs in a row led to `node` (0 for a node that is not itself a repair)."""
        count = 0
        while node.kind == "repair" and node.parent in self._by_index:
            count += 1
            node = self._by_index[node.parent]
        return count

    def lineage_root(self, node: Attempt) -> Attempt:
        """The attempt a chain of repairs started from (the failed draft or improvement)."""
        while node.kind == "repair" and node.parent in self._by_index:
            node = self._by_index[node.parent]
        return node

    def repairable(self) -> list[Attempt]:
        """Failed leaves whose repair chain is still shorter than `debug_depth`. Repeats and answers without
        code are not bugs to fix: there is no new script to repair (an edit that did not apply is: its
        script is the parent's). The harness's baseline is not the model's to repair."""
        return [a for a in self.attempts
                if not a.valid and (a.code is not None or a.edit_error is not None) and a.duplicate_of is None
                and a.kind != "baseline" and not self.children(a) and self.repairs_above(a) < self.debug_depth]

    def rewards(self) -> dict[int, float]:
        """Rank-normalised scores in [0, 1]: the best valid node 1, the worst valid 0 (1 if alone), failed 0."""
        ranked = sorted(self.valid, key=lambda a: (a.score_value, -a.index))
        if len(ranked) == 1:
            return {ranked[0].index: 1.0}
        return {a.index: i / (len(ranked) - 1) for i, a in enumerate(ranked)}

    def subtree(self, node: Attempt) -> list[Attempt]:
        out, stack = [], [node]
        while stack:
            current = stack.pop()
            out.append(current)
            stack.extend(self.children(current))
        return out


class Policy:
    """Plans a round: `plan(view, n)` returns up to `n` actions (a missing draft round may return more)."""

    name = "policy"

    def plan(self, view: TreeView, n: int) -> list[Action]:
        missing = view.drafts_wanted - len(view.drafts)
        if missing > 0:
            return [Action("draft")] * missing
        return self._expand(view, n)

    def _expand(self, view: TreeView, n: int) -> list[Action]:
        raise NotImplementedError


class GreedyPolicy(Policy):
    """Repair what is worth repairing, else improve the best node (see the module docstring)."""

    name = "greedy"

    def _expand(self, view: TreeView, n: int) -> list[Action]:
        best = view.best()
        worth = [b for b in view.repairable() if self._worth_repairing(view, b, best)]
        actions = [Action("repair", b.index) for b in worth]
        target = view.best_improvable()
        if target is not None:  # something works: at most one repair per round, the rest improves the best
            actions = actions[:1] + [Action("improve", target.index)] * n
        elif not actions:  # nothing works, or every working node is exhausted: a new idea
            actions = [Action("draft")] * n
        return actions[:n]

    @staticmethod
    def _worth_repairing(view: TreeView, node: Attempt, best: Attempt | None) -> bool:
        root = view.lineage_root(node)
        if root.kind == "draft":
            return best is None or not any(a.valid for a in view.subtree(root))
        return best is not None and root.parent == best.index


class UCBPolicy(Policy):
    """Upper confidence bound over expandable nodes (see the module docstring)."""

    name = "ucb"

    def __init__(self, c: float = 0.7) -> None:
        if not c >= 0:
            raise ConfigError(f"the UCB exploration constant must be >= 0 (got {c}); e.g. --policy ucb:0.7")
        self.c = c

    def _expand(self, view: TreeView, n: int) -> list[Action]:
        rewards = view.rewards()
        candidates = [(Action("improve", a.index), a) for a in view.improvable()]
        candidates += [(Action("repair", a.index), a) for a in view.repairable()]
        if not candidates:
            return [Action("draft")] * n
        value = {a.index: max(rewards.get(d.index, 0.0) for d in view.subtree(a)) for _, a in candidates}
        visits = {a.index: len(view.subtree(a)) for _, a in candidates}
        total = len(view.attempts)
        actions = []
        for _ in range(n):
            def ucb(item: tuple[Action, Attempt], total: int = total) -> tuple[float, float, int]:
                action, node = item
                bonus = self.c * math.sqrt(math.log(total + 1) / visits[node.index])
                return value[node.index] + bonus, value[node.index], -node.index

            action, node = max(candidates, key=ucb)
            actions.append(action)
            visits[node.index] += 1
            total += 1
            if action.kind == "repair":  # a repair is made once per round; improvements may repeat
                candidates = [c for c in candidates if c[0] != action]
                if not candidates:
                    break
        return actions


def make_policy(spec: str) -> Policy:
    """"greedy", "ucb" or "ucb:<c>" -> a policy object."""
    name, _, arg = spec.strip().lower().partition(":")
    if name == "greedy" and not arg:
        return GreedyPolicy()
    if name == "ucb":
        try:
            return UCBPolicy(float(arg)) if arg else UCBPolicy()
        except ValueError:
            raise ConfigError(f"cannot read the UCB constant in --policy {spec!r}: write e.g. ucb:0.7") from None
    raise ConfigError(f"unknown --policy {spec!r}: use one of greedy, ucb, ucb:<c> (e.g. ucb:0.7)")
