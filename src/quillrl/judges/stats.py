"""The small probability arithmetic every pairwise judge shares.

Pure functions on floats, each with its formula (docs/design.md, "GenRM judgment"):

* :func:`renormalise`: ``p(A) = P(A) / (P(A) + P(B))`` from a backend's raw first-token
  probabilities.
* :func:`binary_entropy`: ``H = -(p log p + (1-p) log(1-p)) / log 2``, in bits, so in [0, 1].
* :func:`swap_debias`: ``p(A ≻ B) = (p_AB(A) + 1 - p_BA(A)) / 2`` from both presentation orders.
* :func:`position_consistency`: the share of swapped pairs whose winner does not flip.
"""

from __future__ import annotations

import math
from typing import Iterable


def renormalise(prob_a: float, prob_b: float) -> float | None:
    """``P(A) / (P(A) + P(B))``; ``None`` when the two carry no mass (nothing to renormalise).

    >>> renormalise(0.25, 0.75)
    0.25
    >>> renormalise(0.0, 0.0) is None
    True
    """
    total = float(prob_a) + float(prob_b)
    if not math.isfinite(total) or total <= 0.0:
        return None
    return float(prob_a) / total


def binary_entropy(p: float) -> float:
    """Entropy of a Bernoulli(p) verdict in bits: 0 for a certain verdict, 1 at p = 0.5.

    ``0 log 0`` is taken as 0, so ``p`` in {0, 1} gives exactly 0.

    >>> binary_entropy(0.5)
    1.0
    >>> binary_entropy(1.0)
    0.0
    >>> round(binary_entropy(0.9), 4)
    0.469
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"a probability must lie in [0, 1], got {p}")
    h = 0.0
    for q in (p, 1.0 - p):
        if q > 0.0:
            h -= q * math.log(q)
    return h / math.log(2.0)


def swap_debias(p_ab: float, p_ba: float) -> float:
    """Position-debiased ``p(A ≻ B)``.

    ``p_ab`` is ``p(A)`` with A shown first; ``p_ba`` is the judge's ``p(A)`` for the swapped
    presentation, where the slot called "A" holds the original B, so ``1 - p_ba`` is the
    original A's probability from that order. The mean cancels a constant bias towards slot A.

    >>> swap_debias(0.75, 0.25)  # A wins in both orders, equally surely
    0.75
    >>> swap_debias(0.75, 0.5)   # A wins first, undecided once swapped
    0.625
    >>> swap_debias(0.8, 0.8)   # always says "slot A": pure position bias, no preference
    0.5
    """
    return (float(p_ab) + 1.0 - float(p_ba)) / 2.0


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
