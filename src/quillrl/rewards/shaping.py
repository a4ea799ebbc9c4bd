"""RLCS's entropy-based reward shaping for training the pairwise judge (GenRM) with GRPO.

RLCS (arXiv 2601.07149) refines its generative reward model with GRPO on labelled story pairs,
and shapes the reward of each sampled judgment with the entropy H of its verdict: a right
verdict earns more when the judge was unsure (hard pairs are where it still has to learn), a
wrong verdict costs more when the judge was sure (confident mistakes are the dangerous ones),
and an unparseable judgment costs most. The paper's exact formula was not available to us;
ours (docs/design.md, "Entropy-based reward shaping") is linear in H between a floor and 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from ..errors import ConfigError

__all__ = ["shape_by_entropy"]


def _as_outcomes(correct: Sequence[bool | None]) -> np.ndarray:
    """Outcome codes: 1 right, 0 wrong, −1 invalid; anything but a bool or None is an error."""
    flags = np.asarray(correct, dtype=object)
    if flags.ndim != 1:
        raise ValueError(f"correct must be 1-D, got shape {flags.shape}")
    out = np.empty(flags.size, dtype=np.int8)
    for i, v in enumerate(flags):
        if v is None:
            out[i] = -1
        elif isinstance(v, (bool, np.bool_)):
            out[i] = int(bool(v))
        else:
            # A verdict string or a score here is a bug upstream, not a judgment to guess at.
            raise ValueError(f"correct[{i}] is {v!r}; use True (right), False (wrong) or None (invalid)")
    return out


def shape_by_entropy(correct: Sequence[bool | None], entropy: ArrayLike, floor: float = 0.2,
                     format_penalty: float = 0.5, forced: Sequence[bool] | None = None,
                     forced_penalty: float = 0.0) -> np.ndarray:
    """Rewards for sampled judgments of labelled pairs, shaped by verdict entropy H (RLCS).

    - right (``True``):   ``r = floor + (1 − floor)·H``          in [floor, 1], increasing in H;
    - wrong (``False``):  ``r = −(floor + (1 − floor)·(1 − H))``  in [−1, −floor], lowest at H = 0;
    - invalid (``None``): ``r = −1 − format_penalty``, below every wrong verdict when
      ``format_penalty > 0``; its entropy is not read (None or NaN is fine).

    - a valid judgment whose verdict was *forced* (``forced[i]``: the judge's analysis was
      closed for it, docs/design.md "Forced verdict") earns the above ``− forced_penalty``: it
      is still scored by its verdict and H, so shaping acts on it, but a judge that finishes
      on its own earns more. Invalid judgments are never forced.

    ``floor`` in (0, 1] keeps every right verdict above every wrong one; ``floor = 1`` is the
    unshaped ±1 reward, the ablation baseline. ``entropy`` of a valid judgment must be in [0, 1]
    (:func:`~quillrl.rewards.verdict.binary_entropy`). The formula is ours: RLCS
    (arXiv 2601.07149) states the behaviour, its exact formula was not available to us.

    >>> shape_by_entropy([True, False, None], [0.5, 0.5, None]).round(3).tolist()
    [0.6, -0.6, -1.5]
    >>> shape_by_entropy([True, True, False], [0.0, 1.0, 0.0], floor=1.0).tolist()
    [1.0, 1.0, -1.0]
    >>> shape_by_entropy([True, True], [0.5, 0.5], forced=[False, True], forced_penalty=0.25).round(3).tolist()
    [0.6, 0.35]
    """
    floor, format_penalty = float(floor), float(format_penalty)
    if not 0.0 < floor <= 1.0:
        raise ConfigError(f"floor={floor} must be in (0, 1]; 1 gives the unshaped ±1 reward (default 0.2)")
    if not (np.isfinite(format_penalty) and format_penalty >= 0.0):
        raise ConfigError(f"format_penalty={format_penalty} must be a finite number >= 0 (default 0.5)")
    forced_penalty = float(forced_penalty)
    if not (np.isfinite(forced_penalty) and forced_penalty >= 0.0):
        raise ConfigError(f"forced_penalty={forced_penalty} must be a finite number >= 0 (default 0)")
    outcome = _as_outcomes(correct)
    ent = np.asarray(entropy, dtype=object)
    if ent.ndim != 1 or ent.size != outcome.size:
        raise ValueError(f"got {outcome.size} outcomes but entropy of shape {ent.shape}; "
                         "pass one entropy per judgment")
    h = np.array([np.nan if x is None else float(x) for x in ent], dtype=np.float64)
    valid = outcome >= 0
    bad = np.flatnonzero(valid & ~((h >= 0.0) & (h <= 1.0)))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"entropy[{i}] = {h[i]} must be in [0, 1] for a valid judgment (bits, base 2)")

    rewards = np.full(outcome.size, -1.0 - format_penalty)
    right, wrong = outcome == 1, outcome == 0
    rewards[right] = floor + (1.0 - floor) * h[right]
    rewards[wrong] = -(floor + (1.0 - floor) * (1.0 - h[wrong]))
    if forced is not None:
        flags = np.asarray(forced, dtype=bool)
        if flags.shape != outcome.shape:
            raise ValueError(f"got {outcome.size} outcomes but forced of shape {flags.shape}")
        if np.any(flags & ~valid):
            raise ValueError(f"forced[{int(np.flatnonzero(flags & ~valid)[0])}] is set on an invalid "
                             "judgment; only a valid (closed) judgment can be forced")
        rewards[flags] -= forced_penalty
    return rewards
