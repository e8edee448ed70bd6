"""How the messages and notes of task loading name things: a bounded list of names, a "did you mean".

Scope: text only; nothing here reads tables or decides anything about a task.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: Most names a message lists before it says how many more there are.
MAX_LISTED = 30


def listed(items: Iterable, limit: int = MAX_LISTED) -> str:
    """The items as comma-separated text, at most `limit` of them, then how many were left out."""
    texts = [str(item) for item in items]
    shown = ", ".join(texts[:limit])
    return shown + (f", … ({len(texts) - limit} more)" if len(texts) > limit else "")


def did_you_mean(name: object, options: Iterable) -> str:
    """' Did you mean 'X'?' for the option closest to `name`, or '' when none is close."""
    guess = difflib.get_close_matches(str(name), [str(o) for o in options], n=1)
    return f" Did you mean {guess[0]!r}?" if guess else ""
