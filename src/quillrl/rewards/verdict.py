"""A pairwise judge's verdict as probabilities: the arithmetic every GenRM path shares.

Pure functions, NumPy or floats in, the same out (docs/design.md, "GenRM judgment"). Each is
the one place its formula lives; the judges, the GenRM GRPO reward and the pairwise rewards
call them and never restate them:

* :func:`verdict_distribution`: raw letter probabilities at the verdict position →
  ``(p(A), H)``, or ``None`` (invalid) when neither letter carries mass;
* :func:`binary_entropy`: ``H = −(p log₂ p + (1−p) log₂(1−p))``, in [0, 1];
* :func:`swap_debias`: ``p(A ≻ B) = (p_AB(A) + 1 − p_BA(A)) / 2`` from both orders.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["VerdictDistribution", "binary_entropy", "renormalise", "swap_debias",
           "verdict_distribution"]


def _scalar_or_array(arr: np.ndarray, like: ArrayLike) -> float | np.ndarray:
    return float(arr) if np.ndim(like) == 0 else arr


def renormalise(prob_a: float, prob_b: float) -> float | None:
    """``p(A) = P(A) / (P(A) + P(B))``; ``None`` when the two carry no mass (nothing to renormalise).

    >>> renormalise(0.25, 0.75)
    0.25
    >>> renormalise(0.0, 0.0) is None
    True
    """
    total = float(prob_a) + float(prob_b)
    if not math.isfinite(total) or total <= 0.0:
        return None
    return float(prob_a) / total


def binary_entropy(p: ArrayLike) -> float | np.ndarray:
    """Base-2 entropy of a two-way verdict with ``p = p(A)``: ``H = −(p log₂ p + (1−p) log₂(1−p))``.

    In [0, 1]: 0 at p ∈ {0, 1} (``0 log 0 = 0``, no warning), 1 at p = 1/2. NaN (a missing
    probability) stays NaN; a value outside [0, 1] is an error. A scalar gives a float, an
    array-like an array of its shape.

    >>> binary_entropy(0.5), binary_entropy(1.0)
    (1.0, 0.0)
    >>> binary_entropy([0.0, 0.5, 1.0]).tolist()
    [0.0, 1.0, 0.0]
    >>> round(binary_entropy(0.9), 4)
    0.469
    """
    arr = np.asarray(p, dtype=np.float64)
    if np.any(~np.isnan(arr) & ((arr < 0.0) | (arr > 1.0))):
        raise ValueError(f"binary_entropy takes probabilities in [0, 1], got {arr}")
    # Evaluate the logs only where they are finite, so p = 0 or 1 gives 0 without a warning.
    inner = (arr > 0.0) & (arr < 1.0)
    safe = np.where(inner, arr, 0.5)
    h = -(safe * np.log2(safe) + (1.0 - safe) * np.log2(1.0 - safe))
    h = np.where(inner, h, np.where(np.isnan(arr), np.nan, 0.0))
    return _scalar_or_array(np.clip(h, 0.0, 1.0), p)  # rounding can leave H a hair above 1


def swap_debias(p_ab: ArrayLike, p_ba: ArrayLike) -> float | np.ndarray:
    """Position-debiased ``p(A ≻ B) = (p_AB(A) + 1 − p_BA(A)) / 2``.

    ``p_ab`` is ``p(A)`` with A shown first; ``p_ba`` is the judge's ``p(A)`` for the swapped
    presentation, where the slot called "A" holds the original B, so ``1 − p_ba`` is the
    original A's probability from that order. The mean cancels a constant bias towards slot A.
    Elementwise on arrays.

    >>> swap_debias(0.75, 0.25)  # A wins in both orders, equally surely
    0.75
    >>> swap_debias(0.75, 0.5)   # A wins first, undecided once swapped
    0.625
    >>> swap_debias(0.8, 0.8)    # always says "slot A": pure position bias, no preference
    0.5
    """
    out = (np.asarray(p_ab, dtype=np.float64) + 1.0 - np.asarray(p_ba, dtype=np.float64)) / 2.0
    return float(out) if np.ndim(p_ab) == 0 and np.ndim(p_ba) == 0 else out


class VerdictDistribution(NamedTuple):
    """The judge's verdict at one position: ``p_a`` = p(A) over {A, B}, ``entropy`` its H in bits,
    ``mass`` = P(A) + P(B) before renormalising (how much the judge meant a verdict there)."""

    p_a: float
    entropy: float
    mass: float


def verdict_distribution(prob_a: float, prob_b: float) -> VerdictDistribution | None:
    """``(p(A), H, mass)`` from the raw probabilities of the letters A and B at the verdict
    position; ``None`` (an invalid judgment) when they carry no mass.

    ``p(A) = P(A) / (P(A) + P(B))`` and ``H = binary_entropy(p(A))`` (docs/design.md).

    >>> verdict_distribution(0.3, 0.1)
    VerdictDistribution(p_a=0.7499999999999999, entropy=0.8112781244591329, mass=0.4)
    >>> verdict_distribution(0.0, 0.0) is None
    True
    """
    p_a = renormalise(prob_a, prob_b)
    if p_a is None:
        return None
    return VerdictDistribution(p_a=p_a, entropy=binary_entropy(p_a), mass=float(prob_a) + float(prob_b))
