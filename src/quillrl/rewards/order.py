"""A group's rule-fixed order: who is the pivot, who sits next to whom, who is shown first.

A pairwise strategy lists its comparisons by position in the group (``comparisons_needed``:
the pivot is a position, a round-robin pair ``(i, j)`` shows position i first). Positions must
not come from the order in which members reached us: a reward server sees members in the order
their rollouts finished, and that order follows length (short stories finish first), so a pivot
taken from it would be the shortest story more often than not. The rule here puts a group's
members in an order that is a function of the group alone:

    position(x) = rank of sha256(salt ‖ 0x00 ‖ text(x)) among the group's members,

ties (only identical texts share a digest) broken by the index the caller gave. ``salt`` names
the group (``"<seed>:<group id>"``), so two groups holding the same texts are not ordered alike.
A digest is uniform and says nothing about quality, so position 0 — the pivot — is a uniform
draw over the group, as RLCS's random pivot is. Members with identical texts are
interchangeable, so the tie rule changes no reward, only which of two equal texts gets which
(equal-valued) answer.

Both the trainer (``scoring.GroupRewards``) and ``serve-reward`` order groups with
:func:`fixed_order`, so a group's rewards do not depend on who arrived first (docs/design.md,
"Judging while the group arrives").
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["member_key", "fixed_order"]


def member_key(salt: str, text: str) -> str:
    """The digest that places one member: sha256 of ``salt``, a NUL byte and its text (hex).

    >>> member_key("0:g", "a story") == member_key("0:g", "a story") != member_key("0:h", "a story")
    True
    """
    return hashlib.sha256(f"{salt}\x00{text}".encode()).hexdigest()


def fixed_order(salt: str, texts: Sequence[str]) -> list[int]:
    """``order[k]`` = the index (in ``texts``) of the member at position k of the rule-fixed order.

    Members sorted by :func:`member_key`, ties by index. Permuting ``texts`` permutes the
    indices but puts the same texts at the same positions.

    >>> texts = ["a fox", "the sea", "a moon"]
    >>> order = fixed_order("0:g", texts)
    >>> [texts[i] for i in order] == [texts[::-1][i] for i in fixed_order("0:g", texts[::-1])]
    True
    >>> sorted(order)
    [0, 1, 2]
    """
    keys = [member_key(salt, t) for t in texts]
    return sorted(range(len(texts)), key=lambda i: (keys[i], i))
