"""RLMR's dynamic mixed reward: writing quality plus a constraint penalty sized per group.

RLMR (arXiv 2508.18642) trains with GRPO on a writing reward and a constraint verifier, and
sets the weight of the constraint term per group, from the group's writing rewards, so that
every sample that violates a constraint gets a negative advantage whatever its writing reward.
The paper's exact formula was not available to us; :func:`mix_rewards` is our definition
(docs/design.md, "RLMR dynamic mixed reward") and meets that stated behaviour with a proven bound.

All functions work on one GRPO group (or, for :func:`mix_groups`, on consecutive groups of a
flat array) and are pure NumPy: no torch, no TRL.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ..errors import ConfigError

__all__ = ["MIX_METHODS", "ALL_VIOLATE", "RLMRStats", "mix_rewards", "mix_groups", "rlmr_lambda",
           "fill_missing_writing"]

FLAT_TOLERANCE = 1e-12  # std(w) at or below this (relative to max|w|) counts as a flat group
MIX_METHODS = ("rlmr", "writing_only", "constraint_only", "linear")
ALL_VIOLATE = ("zero", "writing")


class RLMRStats(NamedTuple):
    """What the RLMR mix did to one group, for logging."""

    lam: float
    """λ, the penalty subtracted from each violator; 0 when k = 0 or k = n (no penalty applied)."""
    k: int
    """Number of violators (samples whose constraints did not all pass)."""
    sigma: float
    """Population standard deviation (ddof=0) of the writing rewards, or 1 where it is 0."""
    penalised: bool = False
    """True where RLMR subtracted λ from the violators (``method="rlmr"`` and 0 < k < n)."""


def _check_choice(name: str, value: str, accepted: tuple[str, ...]) -> None:
    if value not in accepted:
        raise ConfigError(f"{name}={value!r} is not known; use one of: {', '.join(accepted)}")


def _as_writing(writing: ArrayLike, *, require_finite: bool = True) -> np.ndarray:
    w = np.asarray(writing, dtype=np.float64)
    if w.ndim != 1:
        raise ValueError(f"writing rewards must be 1-D (one group), got shape {w.shape}")
    if require_finite:
        bad = np.flatnonzero(~np.isfinite(w))
        if bad.size:
            i = int(bad[0])
            # A NaN here is almost always a failed judge call; guessing a value would hand the
            # policy a made-up reward, so the caller must decide (retry, drop the group, ...).
            raise ValueError(
                f"writing[{i}] is {w[i]} ({bad.size} non-finite in all): handle judge failures "
                "upstream (retry or drop the group) before mixing"
            )
    return w


def _as_passed(passed: ArrayLike, n: int) -> np.ndarray:
    flags = np.asarray(passed, dtype=object)
    if flags.ndim != 1:
        raise ValueError(f"passed flags must be 1-D (one group), got shape {flags.shape}")
    if flags.size != n:
        raise ValueError(f"got {n} writing rewards but {flags.size} passed flags; they must pair up")
    out = np.empty(n, dtype=bool)
    for i, v in enumerate(flags):
        # Accept bools and 0/1 only: a None (failed verifier) or a stray score must not be read
        # as "passed" by truthiness.
        if isinstance(v, (bool, np.bool_, int, float, np.integer, np.floating)) and v in (0, 1):
            out[i] = bool(v)
        else:
            raise ValueError(f"passed[{i}] is {v!r}; each flag must be True/False (or 1/0)")
    return out


def _check_margin(margin: float) -> float:
    margin = float(margin)
    if not np.isfinite(margin) or margin < 0:
        raise ConfigError(f"margin={margin} must be a finite number >= 0 (default 0.5)")
    return margin


def _rlmr_stats(w: np.ndarray, c: np.ndarray, margin: float) -> RLMRStats:
    n, k = w.size, int(np.count_nonzero(~c))
    sigma = float(w.std())  # ddof=0: the group is the whole population GRPO normalises over
    if sigma <= FLAT_TOLERANCE * (1.0 + float(np.abs(w).max())):
        # a flat group has no spread to size the margin by; 1 keeps it positive. "Flat" includes
        # a spread at rounding level (a group made flat by a subtraction, e.g. a style penalty
        # that cancels w exactly), where a margin of σ ≈ 1e-17 would round away to 0.
        sigma = 1.0
    if k == 0 or k == n:
        return RLMRStats(0.0, k, sigma)
    # Subtracting λ from k of n samples also lowers the group mean by λ·k/n, so a violator only
    # drops λ·(1 - k/n) relative to it; dividing by (1 - k/n) makes up for that, and even the
    # best-written violator ends at least margin·σ·(1 - k/n) below the new mean.
    excess = max(0.0, float(w[~c].max() - w.mean()))
    lam = excess / (1.0 - k / n) + margin * sigma
    return RLMRStats(lam, k, sigma, penalised=True)


def rlmr_lambda(writing: ArrayLike, passed: ArrayLike, margin: float = 0.5) -> RLMRStats:
    """λ, k and σ of the RLMR mix for one group, for logging.

    ``σ = std(w)`` with ddof=0 (population std; 1 if it is 0, or at rounding level:
    ``σ ≤ 1e-12·(1 + max|w|)``), ``k = |V|`` the number of
    violators, and for ``0 < k < n``::

        λ = max(0, max_{i∈V} w_i − mean(w)) / (1 − k/n) + margin·σ

    λ is reported as 0 when ``k = 0`` or ``k = n``, where no penalty is subtracted.
    RLMR (arXiv 2508.18642) states the goal (a negative advantage for every violator); this
    formula is ours, as the paper's was not available.

    >>> s = rlmr_lambda([1.0, 2.0, 3.0, 4.0], [True, True, True, False])
    >>> round(s.lam, 4), s.k, round(s.sigma, 4)
    (2.559, 1, 1.118)
    """
    w = _as_writing(writing)
    return _rlmr_stats(w, _as_passed(passed, w.size), _check_margin(margin))


def mix_rewards(
    writing: ArrayLike,
    passed: ArrayLike,
    method: str = "rlmr",
    margin: float = 0.5,
    all_violate: str = "zero",
    weight: float = 1.0,
    singleton_penalty: float = 1.0,
) -> np.ndarray:
    """Mix writing rewards ``w`` and constraint pass flags ``c`` of one GRPO group.

    Methods (RLMR, arXiv 2508.18642; the formulas are ours, the paper's were not available;
    docs/design.md, "RLMR dynamic mixed reward"):

    - ``rlmr``: with violators V, ``k = |V|``, ``σ = std(w)`` (ddof=0, 1 if 0):
      ``k = 0`` → ``r = w``; ``0 < k < n`` → ``r_i = w_i − λ·[i ∈ V]`` with λ from
      :func:`rlmr_lambda`; ``k = n`` → ``r = 0`` (``all_violate="zero"``) or ``r = w``
      (``all_violate="writing"``).  For every violator ``r_i − mean(r) ≤ −margin·σ·(1 − k/n)``,
      which is < 0 for ``margin > 0``: a negative advantage under any GRPO normalisation that
      subtracts the group mean.  Orders within compliant and within violating samples are kept,
      and ``r`` follows affine rescalings of ``w`` (``a·w + b`` with ``a > 0`` gives ``a·r + b``)
      whenever ``std(w) > 0``.
      A group of one (``n = 1``: validation with one sample per prompt, or a timed-out group
      with one member present) has no peer to rank against, so RLMR's group rule cannot apply;
      its reward is ``r = w − singleton_penalty·[violates]`` (docs/design.md, "Group identity"):
      a violator always gets less than it would have got had it complied.
    - ``writing_only``: ``r = w``.   ``constraint_only``: ``r = c`` (as 0/1).
    - ``linear``: ``r = w + weight·c``.

    ``all_violate`` applies to ``rlmr`` only but is validated for every method, so a typo fails
    fast. ``writing`` must be finite except under ``constraint_only``, which ignores it.

    >>> mix_rewards([1.0, 2.0, 3.0, 4.0], [True, True, True, False]).round(3).tolist()
    [1.0, 2.0, 3.0, 1.441]
    >>> mix_rewards([1.0, 2.0], [False, False]).tolist()
    [0.0, 0.0]
    >>> mix_rewards([1.0, 2.0], [True, False], method="linear", weight=0.5).tolist()
    [1.5, 2.0]
    >>> mix_rewards([0.0], [False]).tolist(), mix_rewards([0.0], [True]).tolist()
    ([-1.0], [0.0])
    """
    return _mix_one(writing, passed, method, margin, all_violate, weight, singleton_penalty)[0]


def _mix_one(writing: ArrayLike, passed: ArrayLike, method: str = "rlmr", margin: float = 0.5,
             all_violate: str = "zero", weight: float = 1.0,
             singleton_penalty: float = 1.0) -> tuple[np.ndarray, RLMRStats]:
    """:func:`mix_rewards` and the group's :class:`RLMRStats` (``penalised`` only under rlmr)."""
    _check_choice("method", method, MIX_METHODS)
    _check_choice("all_violate", all_violate, ALL_VIOLATE)
    margin = _check_margin(margin)
    weight, singleton_penalty = float(weight), float(singleton_penalty)
    if not np.isfinite(weight):
        raise ConfigError(f"weight={weight} must be a finite number (default 1.0)")
    if not np.isfinite(singleton_penalty) or singleton_penalty <= 0:
        raise ConfigError(f"singleton_penalty={singleton_penalty} must be a finite number > 0 (default 1.0)")
    w = _as_writing(writing, require_finite=method != "constraint_only")
    c = _as_passed(passed, w.size)

    if method != "rlmr":
        k = int(np.count_nonzero(~c))
        sigma = float(np.nan_to_num(w).std()) or 1.0
        stats = RLMRStats(0.0, k, sigma)
        if method == "writing_only":
            return w.copy(), stats
        if method == "constraint_only":
            return c.astype(np.float64), stats
        return w + weight * c, stats  # linear

    if w.size == 1:  # no peer: the singleton rule (docs/design.md, "Group identity")
        k = int(not c[0])
        return w - singleton_penalty * k, RLMRStats(singleton_penalty * k, k, 1.0, penalised=bool(k))
    stats = _rlmr_stats(w, c, margin)
    if stats.k == w.size:
        # No compliant sample to prefer: "zero" gives no gradient, "writing" still teaches prose.
        return (np.zeros_like(w) if all_violate == "zero" else w.copy()), stats
    return w - stats.lam * (~c), stats


def mix_groups(writing: ArrayLike, passed: ArrayLike, group_size: int, *,
               return_stats: bool = False, **kwargs: Any):
    """Apply :func:`mix_rewards` to each run of ``group_size`` consecutive samples.

    This is what a GRPO trainer calls on *gathered* rewards: completions of one prompt are
    contiguous (TRL's ``num_generations``), and a group must be mixed whole, never as one
    process's slice of it. Keyword arguments go to :func:`mix_rewards`. With
    ``return_stats=True`` the result is ``(rewards, [RLMRStats per group])``, so a caller logs
    λ from the mix itself instead of deriving it again.

    >>> mix_groups([1, 2, 3, 4], [True, False, False, False], group_size=2).round(3).tolist()
    [1.0, 0.75, 0.0, 0.0]
    >>> r, stats = mix_groups([1, 2, 3, 4], [True, False, False, False], 2, return_stats=True)
    >>> [(round(s.lam, 3), s.k, s.penalised) for s in stats]
    [(1.25, 1, True), (0.0, 2, False)]
    """
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) or group_size < 1:
        raise ConfigError(f"group_size={group_size!r} must be a positive integer (TRL: num_generations)")
    method = kwargs.get("method", "rlmr")
    # Validate the flat arrays first so an error names the index in the batch, not in a group.
    w = _as_writing(writing, require_finite=method != "constraint_only")
    c = _as_passed(passed, w.size)
    if w.size % group_size:
        raise ValueError(
            f"got {w.size} rewards, not a multiple of group_size={group_size}: mix gathered "
            "rewards of whole groups, with each group's completions contiguous"
        )
    mixed = [_mix_one(w[s:s + group_size], c[s:s + group_size], **kwargs)
             for s in range(0, w.size, group_size)]
    rewards = np.concatenate([r for r, _ in mixed]) if mixed else np.zeros(0)
    return (rewards, [stats for _, stats in mixed]) if return_stats else rewards


def fill_missing_writing(writing: ArrayLike, missing: ArrayLike, group_size: int) -> np.ndarray:
    """Writing rewards with each missing one replaced by the mean of its group's valid ones.

    A judge failure (after retries) leaves ``w_i`` with no judgment behind it. Rather than a
    made-up score, ``w_i = mean_{j valid} w_j`` over the valid members of its group (0 when none
    is valid), so the sample neither gains nor loses on writing; it stays flagged by the caller,
    and its constraint term still applies in the mix (docs/design.md, "Group barrier"). Groups
    are runs of ``group_size`` consecutive samples, as in :func:`mix_groups`.

    >>> fill_missing_writing([0.5, 0.0, -0.1, 0.0], [False, True, False, True], 2).tolist()
    [0.5, 0.5, -0.1, -0.1]
    >>> fill_missing_writing([0.0, 0.0], [True, True], 2).tolist()
    [0.0, 0.0]
    """
    w = np.array(writing, dtype=np.float64)
    miss = np.asarray(missing, dtype=bool)
    if miss.shape != w.shape or w.ndim != 1 or group_size < 1 or w.size % group_size:
        raise ValueError(f"writing {w.shape} and missing {miss.shape} must be 1-D, equal, and whole "
                         f"groups of {group_size}")
    for s in range(0, w.size, group_size):
        g, m = w[s:s + group_size], miss[s:s + group_size]
        if m.any():
            g[m] = g[~m].mean() if (~m).any() else 0.0
    return w
