"""RLCS's pairwise → scalar rewards: turn a judge's preferences within a group into rewards.

RLCS (arXiv 2601.07149) rewards a story-writing policy with a generative judge that compares
two stories at a time. A GRPO group of n completions needs one scalar per completion, so the
comparisons are folded into rewards by one of three strategies, each trading judge calls for
variance (docs/design.md, "Pairwise → scalar rewards"):

- ``pivot``: compare everyone with one member u: n − 1 comparisons;
- ``reference``: compare everyone with the task's reference text: n comparisons;
- ``round_robin``: compare every pair: n(n − 1)/2 comparisons.

The paper's exact formulas were not available to us; ours map a preference probability
p ∈ [0, 1] to 2p − 1 ∈ [−1, 1], so a tie is worth 0 and rewards are antisymmetric.

Usage in a trainer: ``pairs = comparisons_needed(strategy, n, pivot=u)``, judge exactly those
pairs (in batch), ``p = preference_matrix(n, pairs, probs)``, ``r = pairwise_rewards(p, ...)``.
A failed judgment is ``None``/NaN; see :func:`pairwise_rewards` for what it does to rewards.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from ..errors import ConfigError
from .verdict import swap_debias

__all__ = ["STRATEGIES", "choose_pivot", "comparisons_needed", "preference_matrix", "pairwise_rewards"]

STRATEGIES = ("pivot", "reference", "round_robin")


def _check_strategy(strategy: str, pivot: int | None) -> None:
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy={strategy!r} is not known; use one of: {', '.join(STRATEGIES)}")
    if pivot is not None and strategy != "pivot":
        raise ConfigError(f"pivot={pivot} only applies to strategy='pivot', not {strategy!r}")


def _check_pivot(pivot: int, n: int) -> int:
    if isinstance(pivot, bool) or not isinstance(pivot, (int, np.integer)) or not 0 <= pivot < n:
        raise ConfigError(f"pivot={pivot!r} must be an index of the group, 0 <= pivot < {n}")
    return int(pivot)


def choose_pivot(n: int, seed: int | None = None) -> int:
    """The pivot member u of a group of n: uniform over the group, reproducible from ``seed``.

    The same ``(n, seed)`` always gives the same u, so a trainer can list the comparisons with
    :func:`comparisons_needed` and compute rewards with :func:`pairwise_rewards` separately.

    >>> choose_pivot(8, seed=0) == choose_pivot(8, seed=0)
    True
    >>> 0 <= choose_pivot(8, seed=1) < 8
    True
    """
    if n < 1:
        raise ValueError(f"a group needs at least one member, got n={n}")
    return int(np.random.default_rng(seed).integers(n))


def comparisons_needed(strategy: str, n: int, pivot: int | None = None,
                       seed: int | None = None) -> list[tuple[int, int]]:
    """Exactly the ordered pairs ``(i, j)`` whose ``p(i ≻ j)`` a strategy reads.

    ``pivot``: ``(i, u)`` for every ``i ≠ u`` (n − 1 pairs); u is ``pivot``, or
    ``choose_pivot(n, seed)``; one of the two is required, since an unseeded random pivot here
    would not be the one the rewards are later computed with.
    ``reference``: ``(i, n)`` for every i (n pairs); index n stands for the reference text.
    ``round_robin``: ``(i, j)`` for every ``i < j`` (n(n − 1)/2 pairs); ``p(j ≻ i) = 1 − p(i ≻ j)``.
    Each pair is one swap-debiased comparison (both presentation orders) of RLCS's judge.

    >>> comparisons_needed("pivot", 3, pivot=1)
    [(0, 1), (2, 1)]
    >>> comparisons_needed("reference", 2)
    [(0, 2), (1, 2)]
    >>> comparisons_needed("round_robin", 3)
    [(0, 1), (0, 2), (1, 2)]
    """
    _check_strategy(strategy, pivot)
    if n < 1:
        raise ValueError(f"a group needs at least one member, got n={n}")
    if strategy == "reference":
        return [(i, n) for i in range(n)]
    if strategy == "round_robin":
        return [(i, j) for i in range(n) for j in range(i + 1, n)]
    if pivot is None and seed is None:
        raise ConfigError("strategy='pivot' needs pivot=<index> or seed=<int> to list its comparisons")
    u = choose_pivot(n, seed) if pivot is None else _check_pivot(pivot, n)
    return [(i, u) for i in range(n) if i != u]


def preference_matrix(n: int, pairs: Sequence[tuple[int, int]],
                      probs: Sequence[float | None]) -> np.ndarray:
    """The n×n matrix ``p[i, j] = p(i ≻ j)`` from judged pairs; NaN where nothing was judged.

    Each ``(i, j)`` with probability q sets ``p[i, j] = q`` and ``p[j, i] = 1 − q``; a ``None``
    or NaN q (a failed judgment) leaves both NaN. The diagonal is NaN. For the ``reference``
    strategy no matrix is needed: the probabilities, in the order of
    ``comparisons_needed("reference", n)``, already are the vector ``p(i ≻ ref)``.

    >>> preference_matrix(3, [(0, 1), (0, 2)], [0.75, None]).tolist()
    [[nan, 0.75, nan], [0.25, nan, nan], [nan, nan, nan]]
    """
    if len(pairs) != len(probs):
        raise ValueError(f"got {len(pairs)} pairs but {len(probs)} probabilities; they must pair up")
    p = np.full((n, n), np.nan)
    for (i, j), q in zip(pairs, probs):
        if not (0 <= i < n and 0 <= j < n) or i == j:
            raise ValueError(f"pair {(i, j)} is not two different members of a group of {n}")
        if q is None or np.isnan(q):
            continue
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"p({i} ≻ {j}) = {q} is not a probability in [0, 1]")
        p[i, j], p[j, i] = q, 1.0 - q
    return p


def _debiased(p: np.ndarray) -> np.ndarray:
    """``q[i, j]``: :func:`~quillrl.rewards.verdict.swap_debias` of ``p[i, j]`` and ``p[j, i]``
    where both are given, else whichever of ``p[i, j]`` and ``1 − p[j, i]`` is.

    Both entries carry the same information when p is swap-debiased, so this changes nothing
    there; for a raw matrix of one-order judgments (``p[i, j]`` = i wins when shown first) it
    *is* the swap debiasing of docs/design.md; and it lets a caller fill only one triangle.
    """
    given, mirrored = ~np.isnan(p), ~np.isnan(p.T)
    q = np.where(given & mirrored, swap_debias(p, p.T), np.where(given, p, 1.0 - p.T))
    np.fill_diagonal(q, np.nan)
    return q


def _as_probabilities(p: ArrayLike, ndim: int, what: str) -> np.ndarray:
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim != ndim or (ndim == 2 and arr.shape[0] != arr.shape[1]):
        raise ValueError(f"{what}, got shape {arr.shape}")
    check = arr.copy()
    if ndim == 2:
        np.fill_diagonal(check, np.nan)  # the diagonal is never read; any value is fine there
    bad = np.argwhere(~np.isnan(check) & ~((check >= 0.0) & (check <= 1.0)))
    if bad.size:
        where = tuple(int(x) for x in bad[0])
        raise ValueError(f"p{list(where)} = {arr[where]} is not a probability in [0, 1] (or NaN if missing)")
    return arr


def pairwise_rewards(p: ArrayLike, strategy: str = "round_robin", pivot: int | None = None,
                     seed: int | None = None,
                     return_missing: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Scalar rewards for a group of n completions from pairwise preferences (RLCS).

    Input: for ``pivot`` and ``round_robin``, an n×n matrix ``p[i, j] = p(i ≻ j)``
    (swap-debiased; the diagonal is ignored); for ``reference``, a length-n vector
    ``p[i] = p(i ≻ ref)``. Formulas (ours; the paper's were not available):

    - ``pivot``: ``r_i = 2 p(i ≻ u) − 1``, ``r_u = 0``; u = ``pivot``, else ``choose_pivot(n, seed)``;
    - ``reference``: ``r_i = 2 p(i ≻ ref) − 1``;
    - ``round_robin``: ``r_i = mean_{j≠i} (2 p(i ≻ j) − 1)``; sums to 0 when every pair is judged.

    ``p(i ≻ j)`` is read as the mean of ``p[i, j]`` and ``1 − p[j, i]`` where both are given,
    and from whichever is given otherwise, so one triangle suffices (see ``preference_matrix``).
    Missing comparisons (NaN on both sides, a failed judgment): ``round_robin`` averages over
    the valid ones; a reward with no valid comparison behind it is 0, a tie, rather than a
    guess, and is flagged. With ``return_missing=True`` the result is ``(rewards, missing)``,
    ``missing[i]`` True where ``r_i`` was filled with 0 (never for the pivot itself, whose 0 is
    its definition); count them and report them.

    >>> p = [[0.5, 0.9, 0.8], [0.1, 0.5, 0.4], [0.2, 0.6, 0.5]]
    >>> pairwise_rewards(p).round(3).tolist()
    [0.7, -0.5, -0.2]
    >>> pairwise_rewards(p, "pivot", pivot=0).round(3).tolist()
    [0.0, -0.8, -0.6]
    >>> r, missing = pairwise_rewards([0.75, float("nan")], "reference", return_missing=True)
    >>> r.tolist(), missing.tolist()
    ([0.5, 0.0], [False, True])
    """
    _check_strategy(strategy, pivot)
    if strategy == "reference":
        arr = _as_probabilities(p, 1, "strategy='reference' takes a vector of p(i ≻ ref)")
        scores = 2.0 * arr - 1.0
    else:
        arr = _as_probabilities(p, 2, f"strategy={strategy!r} takes an n×n matrix p[i, j] = p(i ≻ j)")
        n = arr.shape[0]
        q = _debiased(arr)
        if strategy == "round_robin":
            margins = 2.0 * q - 1.0
            valid = np.sum(~np.isnan(margins), axis=1)
            sums = np.nansum(margins, axis=1)
            scores = np.where(valid > 0, sums / np.maximum(valid, 1), np.nan)
            if n == 1:
                scores = np.zeros(1)  # a lone completion has nothing to lose to: a tie, not a gap
        else:
            u = choose_pivot(n, seed) if pivot is None else _check_pivot(pivot, n)
            scores = 2.0 * q[:, u] - 1.0
            scores[u] = 0.0
    missing = np.isnan(scores)
    rewards = np.where(missing, 0.0, scores)
    return (rewards, missing) if return_missing else rewards
