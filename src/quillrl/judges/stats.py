"""Judge statistics on verdicts (docs/design.md, "GenRM judgment").

* :func:`verdict_of`: the winner a probability names;
* :func:`position_consistency`: the share of swapped pairs whose winner does not flip.

The probability arithmetic (renormalising over {A, B}, binary entropy, swap debiasing) lives
once in :mod:`quillrl.rewards.verdict` and is re-exported here for the judges.
"""

from __future__ import annotations

from typing import Iterable

from ..rewards.verdict import binary_entropy, renormalise, swap_debias, verdict_distribution

__all__ = ["binary_entropy", "position_consistency", "renormalise", "swap_debias",
           "verdict_distribution", "verdict_of"]


def verdict_of(p: float | None) -> str | None:
    """``"A"`` if ``p > 0.5``, ``"B"`` if ``p < 0.5``; ``None`` for a tie or no probability.

    >>> verdict_of(0.7), verdict_of(0.2), verdict_of(0.5)
    ('A', 'B', None)
    """
    if p is None or p == 0.5:
        return None
    return "A" if p > 0.5 else "B"


def position_consistency(flipped: Iterable[bool | None]) -> float | None:
    """Share of pairs whose winner does not flip with the order; ``None`` entries (invalid or
    unswapped pairs) are left out. ``None`` when no pair qualifies.

    >>> position_consistency([False, True, False, None])
    0.6666666666666666
    """
    known = [f for f in flipped if f is not None]
    if not known:
        return None
    return sum(1 for f in known if not f) / len(known)
