"""How often a judge agrees with human preference labels, and how well it knows when it does.

Pure functions on per-pair numbers (NumPy in, plain floats out); running judges and writing
reports live elsewhere (``eval/judging.py``, ``cli/eval.py``). Each pair's human-preferred text
is ``chosen``, so everything is stated in terms of ``p_chosen``, the judge's ``p(chosen ≻
rejected)`` (``None`` for an invalid judgment).

* Per-pair score (:func:`pair_scores`): 1 if the judge prefers ``chosen`` (``p_chosen > 0.5``),
  0 if it prefers ``rejected``, 0.5 for an exact tie (``p_chosen == 0.5``: e.g. equal lengths
  under ``baseline:length``), the expected score of breaking the tie with a coin. An *invalid*
  judgment scores 0: a judge that fails to answer has not agreed with the human, and leaving it
  out would let a judge raise its accuracy by failing on hard pairs. Invalid judgments are also
  counted on their own (:func:`invalid_rate`), so the two effects can be told apart.
* Accuracy: the mean score; its 95% interval is a seeded percentile bootstrap
  (:func:`bootstrap_ci`), over pairs or, with ``groups``, over whole groups (prompts), since
  pairs that share a prompt are not independent.
* Calibration (:func:`expected_calibration_error`): the judge's confidence in its verdict,
  ``max(p_chosen, 1 - p_chosen)``, against whether the verdict was right, in 10 equal-width bins
  over [0.5, 1] (a pairwise verdict's confidence is never below 0.5, so bins over [0, 1] would
  leave half of them empty). ``ECE = Σ_b (n_b / n) |acc_b - conf_b|`` over valid judgments
  (Guo et al., 2017, for the top label). Invalid judgments have no probability to calibrate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_BINS = 10


def pair_scores(p_chosen: Sequence[float | None]) -> np.ndarray:
    """1 (judge prefers chosen), 0 (prefers rejected or invalid), 0.5 (exact tie) per pair.

    >>> pair_scores([0.9, 0.2, 0.5, None]).tolist()
    [1.0, 0.0, 0.5, 0.0]
    """
    return np.array([0.0 if p is None else 1.0 if p > 0.5 else 0.0 if p < 0.5 else 0.5
                     for p in p_chosen], dtype=float)


def accuracy(p_chosen: Sequence[float | None]) -> float | None:
    """Mean of :func:`pair_scores`; ``None`` for no pairs.

    >>> accuracy([0.9, 0.8, 0.2, None])
    0.5
    """
    scores = pair_scores(p_chosen)
    return float(scores.mean()) if scores.size else None


def invalid_rate(p_chosen: Sequence[float | None]) -> float | None:
    """Share of judgments with no probability (unparseable, no verdict mass).

    >>> invalid_rate([0.9, None, 0.1, None])
    0.5
    """
    return sum(p is None for p in p_chosen) / len(p_chosen) if len(p_chosen) else None


def bootstrap_ci(scores: Sequence[float], *, groups: Sequence[str] | None = None,
                 n_resamples: int = DEFAULT_RESAMPLES, confidence: float = 0.95,
                 seed: int = 0) -> tuple[float, float] | tuple[None, None]:
    """Percentile bootstrap interval of the mean of ``scores``.

    Each resample draws ``len(scores)`` scores with replacement (or, with ``groups``, as many
    groups as there are, keeping each drawn group's scores together, and takes the mean over
    the pairs drawn). The same seed gives the same interval.

    >>> bootstrap_ci([1, 0, 1, 1, 0, 1, 1, 1], seed=0)
    (0.375, 1.0)
    >>> bootstrap_ci([1.0, 1.0, 1.0])
    (1.0, 1.0)
    """
    values = np.asarray(scores, dtype=float)
    if values.size == 0:
        return None, None
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    if groups is None:
        draws = rng.integers(0, values.size, size=(n_resamples, values.size))
        means = values[draws].mean(axis=1)
    else:
        if len(groups) != values.size:
            raise ValueError(f"{len(groups)} groups for {values.size} scores")
        keys = sorted(set(groups))  # sorted: the interval must not depend on hash order
        index = {k: i for i, k in enumerate(keys)}
        which = np.array([index[g] for g in groups])
        sums = np.bincount(which, weights=values, minlength=len(keys))
        sizes = np.bincount(which, minlength=len(keys)).astype(float)
        draws = rng.integers(0, len(keys), size=(n_resamples, len(keys)))
        means = sums[draws].sum(axis=1) / sizes[draws].sum(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class ReliabilityBin:
    """One confidence bin: its edges, how many judgments fell in it, mean confidence, accuracy."""

    low: float
    high: float
    count: int
    confidence: float | None
    accuracy: float | None


def reliability_bins(p_chosen: Sequence[float | None],
                     n_bins: int = DEFAULT_BINS) -> list[ReliabilityBin]:
    """Valid judgments binned by confidence ``max(p, 1 - p)`` over [0.5, 1]; the last bin
    includes 1.0. Accuracy per bin uses :func:`pair_scores` (a tie scores 0.5).

    >>> [(b.count, b.confidence, b.accuracy) for b in reliability_bins([0.95, 0.1, 0.5], 2)]
    [(1, 0.5, 0.5), (2, 0.925, 0.5)]
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    valid = np.array([p for p in p_chosen if p is not None], dtype=float)
    conf = np.maximum(valid, 1.0 - valid)
    scores = pair_scores(valid.tolist())
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    # bin b holds [edge_b, edge_b+1); the top bin also takes confidence exactly 1.0
    which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    out = []
    for b in range(n_bins):
        mask = which == b
        count = int(mask.sum())
        out.append(ReliabilityBin(
            low=float(edges[b]), high=float(edges[b + 1]), count=count,
            confidence=float(conf[mask].mean()) if count else None,
            accuracy=float(scores[mask].mean()) if count else None))
    return out


def expected_calibration_error(p_chosen: Sequence[float | None],
                               n_bins: int = DEFAULT_BINS) -> float | None:
    """``Σ_b (n_b / n) |acc_b - conf_b|`` over the valid judgments' confidence bins.

    A judge always 100% sure and right 60% of the time is off by 0.4:

    >>> expected_calibration_error([1.0] * 6 + [0.0] * 4)
    0.4
    >>> expected_calibration_error([None]) is None
    True
    """
    bins = reliability_bins(p_chosen, n_bins)
    n = sum(b.count for b in bins)
    if n == 0:
        return None
    gap = sum(b.count * abs(b.accuracy - b.confidence) for b in bins if b.count)
    return round(float(gap / n), 12)  # rounded: sums of bin gaps carry float noise


def alignment_summary(p_chosen: Sequence[float | None], flipped: Sequence[bool | None] = (), *,
                      groups: Sequence[str] | None = None, n_resamples: int = DEFAULT_RESAMPLES,
                      seed: int = 0, n_bins: int = DEFAULT_BINS) -> dict:
    """Every agreement metric for one judge on one pair set, as a JSON-ready dict.

    ``flipped`` holds each swapped pair's ``Judgment.flipped`` (empty or all ``None`` without
    swap, giving ``position_consistency: None``).

    >>> s = alignment_summary([0.9, 0.7, 0.4, None], [False, True, False, None], seed=0)
    >>> s["n"], s["accuracy"], s["invalid_rate"], s["position_consistency"], s["ece"]
    (4, 0.5, 0.25, 0.6666666666666666, 0.333333333333)
    """
    from ..judges.stats import position_consistency

    scores = pair_scores(p_chosen)
    low, high = bootstrap_ci(scores, groups=groups, n_resamples=n_resamples, seed=seed)
    return {"n": len(scores), "accuracy": accuracy(p_chosen), "ci_low": low, "ci_high": high,
            "position_consistency": position_consistency(flipped),
            "invalid_rate": invalid_rate(p_chosen),
            "ece": expected_calibration_error(p_chosen, n_bins)}


def p_chosen_of(p_a: float | None, chosen_slot: str) -> float | None:
    """The judge's ``p(chosen ≻ rejected)`` from its ``p(A ≻ B)`` and where chosen was shown.

    >>> p_chosen_of(0.8, "A"), p_chosen_of(0.8, "B"), p_chosen_of(None, "A")
    (0.8, 0.19999999999999996, None)
    """
    if chosen_slot not in ("A", "B"):
        raise ValueError(f"chosen_slot must be 'A' or 'B', got {chosen_slot!r}")
    if p_a is None:
        return None
    return float(p_a) if chosen_slot == "A" else 1.0 - float(p_a)
