"""RLCS's pairwise → scalar rewards: turn a judge's preferences within a group into rewards.

RLCS (arXiv 2601.07149) rewards a story-writing policy with a generative judge that compares
two stories at a time. A GRPO group of n completions needs one scalar per completion, so the
comparisons are folded into rewards by one of three strategies, each trading judge calls for
variance (docs/design.md, "Pairwise → scalar rewards"):

- ``pivot``: compare everyone with one member u: n − 1 comparisons;
- ``reference``: compare everyone with the task's reference text: n comparisons;
- ``round_robin``: compare every pair: n(n − 1)/2 comparisons;
- ``circular``: compare each member with its successor on a ring in a rule-fixed order
  (:func:`~quillrl.rewards.order.fixed_order`): n comparisons (1 for n = 2, none for n = 1);
- ``swiss``: Swiss-style rounds (each round pairs members of similar fitted strength that have
  not met), ⌊n/2⌋ comparisons a round, folded by a Bradley–Terry fit (:func:`bradley_terry`);
  its pairs depend on earlier results, so it is listed round by round (:func:`swiss_pairs`).

The paper's exact formulas were not available to us; ours map a preference probability
p ∈ [0, 1] to 2p − 1 ∈ [−1, 1], so a tie is worth 0 and rewards are antisymmetric.

Usage in a trainer: ``pairs = comparisons_needed(strategy, n, pivot=u)``, judge exactly those
pairs (in batch), ``p = preference_matrix(n, pairs, probs)``, ``r = pairwise_rewards(p, ...)``.
A failed judgment is ``None``/NaN; see :func:`pairwise_rewards` for what it does to rewards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ..errors import ConfigError
from .verdict import swap_debias

__all__ = ["STRATEGIES", "ADAPTIVE", "choose_pivot", "comparisons_needed", "preference_matrix",
           "pairwise_rewards", "swiss_pairs", "swiss_rounds", "bradley_terry", "BTFit"]

STRATEGIES = ("pivot", "reference", "round_robin", "circular", "swiss")
ADAPTIVE = ("swiss",)  # strategies whose comparisons depend on earlier results: no up-front list
BT_PRIOR = 0.1  # L2 prior λ on Bradley–Terry strengths (a N(0, 1/λ) prior): finite under separation


def _check_strategy(strategy: str, pivot: int | None) -> None:
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy={strategy!r} is not known; use one of: {', '.join(STRATEGIES)}")
    if pivot is not None and strategy != "pivot":
        raise ConfigError(f"pivot={pivot} only applies to strategy='pivot', not {strategy!r}")


def _check_order(order: Sequence[int] | None, n: int) -> list[int]:
    if order is None:
        return list(range(n))
    order = [int(i) for i in order]
    if sorted(order) != list(range(n)):
        raise ConfigError(f"order={order!r} must be a permutation of 0..{n - 1}")
    return order


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
                       seed: int | None = None, order: Sequence[int] | None = None) -> list[tuple[int, int]]:
    """Exactly the ordered pairs ``(i, j)`` whose ``p(i ≻ j)`` a strategy reads.

    ``pivot``: ``(i, u)`` for every ``i ≠ u`` (n − 1 pairs); u is ``pivot``, or
    ``choose_pivot(n, seed)``; one of the two is required, since an unseeded random pivot here
    would not be the one the rewards are later computed with.
    ``reference``: ``(i, n)`` for every i (n pairs); index n stands for the reference text.
    ``round_robin``: ``(i, j)`` for every ``i < j`` (n(n − 1)/2 pairs); ``p(j ≻ i) = 1 − p(i ≻ j)``.
    ``circular``: ``(o_k, o_{k+1 mod n})`` for the ring ``o = order`` (default ``0..n−1``; use
    :func:`~quillrl.rewards.order.fixed_order`): n pairs for n ≥ 3, 1 for n = 2, none for n = 1. Each member meets its
    two ring neighbours, once as the first of a pair and once as the second.
    ``swiss``: its pairs depend on earlier results; this raises, use :func:`swiss_pairs`.
    Each pair is one swap-debiased comparison (both presentation orders) of RLCS's judge, so
    every member sits in both slots of every comparison it is in.

    >>> comparisons_needed("pivot", 3, pivot=1)
    [(0, 1), (2, 1)]
    >>> comparisons_needed("reference", 2)
    [(0, 2), (1, 2)]
    >>> comparisons_needed("round_robin", 3)
    [(0, 1), (0, 2), (1, 2)]
    >>> comparisons_needed("circular", 4, order=[2, 0, 3, 1])
    [(2, 0), (0, 3), (3, 1), (1, 2)]
    """
    _check_strategy(strategy, pivot)
    if n < 1:
        raise ValueError(f"a group needs at least one member, got n={n}")
    if strategy == "reference":
        return [(i, n) for i in range(n)]
    if strategy == "round_robin":
        return [(i, j) for i in range(n) for j in range(i + 1, n)]
    if strategy == "circular":
        o = _check_order(order, n)
        return [] if n == 1 else [(o[0], o[1])] if n == 2 else [(o[k], o[(k + 1) % n]) for k in range(n)]
    if strategy == "swiss":
        raise ConfigError("strategy='swiss' picks each round's pairs from earlier results: list them "
                          "round by round with swiss_pairs(n, p, round, order)")
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
    - ``circular``: the same mean, over the pairs judged (i's two ring neighbours): ``r_i =
      ((2 p(i ≻ prev) − 1) + (2 p(i ≻ next) − 1)) / 2``; sums to 0 when every pair is judged.
    - ``swiss``: ``r_i = β_i``, the centred Bradley–Terry strength (log-odds scale,
      :func:`bradley_terry`) fitted to the pairs judged; sums to 0. A member no valid comparison
      reached is flagged missing (reward 0).

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
        if strategy == "swiss":
            fit = bradley_terry(arr)
            scores = np.where(fit.reached | (n == 1), fit.strength, np.nan)
        elif strategy in ("round_robin", "circular"):
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


class BTFit(NamedTuple):
    """A Bradley–Terry fit of one group's comparisons."""

    strength: np.ndarray
    """β, centred (mean 0), on the log-odds scale: ``p(i ≻ j) = sigmoid(β_i − β_j)``."""
    se: np.ndarray
    """Standard error of each β_i: sqrt of the diagonal of the inverse penalised Hessian."""
    reached: np.ndarray
    """bool: member i is in at least one valid comparison."""


def bradley_terry(p: ArrayLike, prior: float = BT_PRIOR) -> BTFit:
    """Fit ``p(i ≻ j) = sigmoid(β_i − β_j)`` to whatever comparisons a matrix holds.

    ``p[i, j]`` as in :func:`pairwise_rewards` (NaN where nothing was judged; one triangle
    suffices). Each judged pair enters with its probability as a soft outcome, so a tie
    (``p = 1/2``) is half a win each way and pulls the two strengths together. The fit
    maximises ``Σ_{i<j judged} [q_ij log σ(β_i − β_j) + (1 − q_ij) log σ(β_j − β_i)] − λ/2 Σ β_i²``
    (``λ = prior``; scipy's L-BFGS), which stays finite when one member wins everything. A member
    no comparison reached has no likelihood term: the prior alone puts it at 0, its ``se`` is
    the prior's ``1/√λ``, and ``reached`` flags it. Strengths are reported centred
    (``β − mean β``); ``se`` is from the inverse of the penalised Hessian at the optimum.

    >>> fit = bradley_terry([[np.nan, 0.9, 0.8], [0.1, np.nan, 0.4], [0.2, 0.6, np.nan]])
    >>> [int(i) for i in np.argsort(-fit.strength)], round(float(fit.strength.sum()), 9)
    ([0, 2, 1], 0.0)
    >>> bradley_terry([[np.nan, 0.5], [0.5, np.nan]]).strength.tolist()
    [0.0, 0.0]
    """
    from scipy.optimize import minimize

    arr = _as_probabilities(p, 2, "bradley_terry takes an n×n matrix p[i, j] = p(i ≻ j)")
    n = arr.shape[0]
    q = _debiased(arr)
    iu, ju = np.triu_indices(n, 1)
    keep = ~np.isnan(q[iu, ju])
    i, j, y = iu[keep], ju[keep], q[iu, ju][keep]
    reached = np.zeros(n, dtype=bool)
    reached[i] = reached[j] = True
    lam = float(prior)
    if not lam > 0:
        raise ValueError(f"prior={prior} must be > 0 (it keeps the fit finite)")

    def loss(b: np.ndarray) -> tuple[float, np.ndarray]:
        z = b[i] - b[j]
        nll = float(np.sum(np.logaddexp(0.0, z) - y * z)) + lam * float(b @ b) / 2
        r = 1.0 / (1.0 + np.exp(-z)) - y
        g = lam * b
        np.add.at(g, i, r)
        np.add.at(g, j, -r)
        return nll, g

    beta = minimize(loss, np.zeros(n), jac=True, method="L-BFGS-B", options={"gtol": 1e-10}).x if i.size \
        else np.zeros(n)
    z = beta[i] - beta[j]
    w = 1.0 / (1.0 + np.exp(-z))
    w = w * (1.0 - w)
    hess = lam * np.eye(n)
    np.add.at(hess, (i, i), w)
    np.add.at(hess, (j, j), w)
    np.add.at(hess, (i, j), -w)
    np.add.at(hess, (j, i), -w)
    se = np.sqrt(np.diag(np.linalg.inv(hess)))
    return BTFit(beta - beta.mean(), se, reached)


def swiss_pairs(n: int, p: ArrayLike | None = None, round: int = 0,
                order: Sequence[int] | None = None) -> list[tuple[int, int]]:
    """The pairs of one Swiss round of a group of n, from the comparisons so far.

    Round 0 pairs neighbours of the rule-fixed ``order`` (:func:`~quillrl.rewards.order.fixed_order`):
    ``(o_0, o_1), (o_2, o_3), …``. A later round ranks the members by their Bradley–Terry
    strength on ``p`` (every comparison so far; ties by position in ``order``) and pairs them
    greedily from the top: each unpaired member with the next-ranked unpaired member it has not
    met, if any. A pair already judged counts as met and is not repeated (a pair whose judgment
    failed, NaN, may be drawn again: a retry); a member with no unmet partner left sits out. With n odd one member sits out a
    round (round 0: the last in ``order``). ``[]`` when no unmet pair is left (after
    ``n − 1`` rounds at most the design is a full round-robin).

    >>> swiss_pairs(4, order=[3, 1, 0, 2])
    [(3, 1), (0, 2)]
    >>> p = preference_matrix(4, [(3, 1), (0, 2)], [0.9, 0.2])
    >>> swiss_pairs(4, p, round=1, order=[3, 1, 0, 2])  # winners 3 and 2 meet, losers 1 and 0
    [(3, 2), (0, 1)]
    """
    o = _check_order(order, n)
    if round == 0 or p is None:
        return [(o[k], o[k + 1]) for k in range(0, n - 1, 2)]
    arr = _as_probabilities(p, 2, "swiss_pairs takes the n×n matrix of the comparisons so far")
    judged = ~np.isnan(arr) | ~np.isnan(arr.T)
    beta = bradley_terry(arr).strength
    pos = {m: k for k, m in enumerate(o)}
    ranked = sorted(range(n), key=lambda m: (-round_half(beta[m]), pos[m]))
    free, pairs = list(ranked), []
    while free:
        a = free.pop(0)
        partner = next((b for b in free if not judged[a, b]), None)
        if partner is not None:
            free.remove(partner)
            pairs.append((a, partner))
    return pairs


def round_half(x: float) -> float:
    """``x`` rounded to 9 decimals, so that strengths equal up to the optimiser's noise tie."""
    return float(np.round(x, 9))


def swiss_rounds(n: int) -> int:
    """The default number of Swiss rounds for a group of n: ``⌈log2 n⌉`` (at least 1).

    >>> [swiss_rounds(n) for n in (2, 4, 8, 16)]
    [1, 2, 3, 4]
    """
    return max(1, int(np.ceil(np.log2(max(n, 2)))))
