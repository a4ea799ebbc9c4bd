"""Head-to-head statistics: win rate with ties and invalid judgments, the length-controlled win
rate, and the paired difference of two pass rates. Pure functions (NumPy/SciPy in, floats out);
running a judge over two policies' responses lives in ``eval/headtohead.py``.

Definitions (docs/design.md, "Policy evaluation"), for A against B on the same tasks:

* ``p_t = p(a_t ≻ b_t)``, the judge's swap-debiased probability for pair ``t``; ``None`` when
  the judgment is invalid (in either order), and such pairs are left out and counted.
* Outcome (:func:`outcomes`): ``s_t = 1`` if ``p_t > 1/2``, ``1/2`` if ``p_t = 1/2``, ``0`` if
  ``p_t < 1/2`` (the per-pair score of ``eval alignment``, on valid judgments only).
* ``win_rate = mean(s_t)``, with a 95% percentile bootstrap that resamples prompts
  (``eval.alignment.bootstrap_ci`` with groups).
* Length-controlled win rate (:func:`lc_win_rate`, AlpacaEval 2.0's idea in a simplified form):
  fit ``P(s=1) = sigmoid(θ + φ·tanh(Δ/sd(Δ)))``, ``Δ = words(a) - words(b)``, by maximum
  likelihood with a tie counted as half a win and half a loss and an L2 penalty ``λ(θ² + φ²)/2``
  that keeps the fit finite when length separates the outcomes; report ``sigmoid(θ)``, the win
  rate at equal length.
* Paired difference (:func:`paired_difference`): ``mean(x_t - y_t)`` over units measured on both
  sides, with the same prompt bootstrap applied to the per-unit differences, which keeps each
  unit's two measurements together.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .alignment import DEFAULT_RESAMPLES, bootstrap_ci, pair_scores

LC_PENALTY = 0.01  # λ: small next to the n terms of the likelihood, enough to bound θ and φ


def outcomes(p: Sequence[float | None]) -> tuple[np.ndarray, np.ndarray]:
    """``(s, valid)``: the outcome of every valid pair, and a mask of which pairs were valid.

    >>> s, valid = outcomes([0.9, 0.5, None, 0.2])
    >>> s.tolist(), valid.tolist()
    ([1.0, 0.5, 0.0], [True, True, False, True])
    """
    valid = np.array([v is not None for v in p], dtype=bool)
    return pair_scores([v for v in p if v is not None]), valid


def lc_win_rate(s: Sequence[float], delta: Sequence[float], penalty: float = LC_PENALTY) -> float | None:
    """``sigmoid(θ)`` of the penalised fit of ``P(s=1) = sigmoid(θ + φ·tanh(Δ/sd(Δ)))``.

    With no spread in Δ the length term is 0 and the fit is the (shrunk) mean outcome. ``None``
    for no outcomes.

    >>> round(lc_win_rate([1, 0, 1, 0.5], [0, 0, 0, 0]), 3)  # no length spread: the mean 0.625, shrunk
    0.624
    >>> round(lc_win_rate([1, 1, 1, 0, 0, 0], [5, 6, 7, -5, -6, -7]), 3)  # all length: even at 0
    0.5
    """
    from scipy.optimize import minimize

    y = np.asarray(s, dtype=float)
    d = np.asarray(delta, dtype=float)
    if y.size == 0:
        return None
    if y.shape != d.shape:
        raise ValueError(f"{y.size} outcomes for {d.size} length differences")
    sd = float(d.std())
    x = np.tanh(d / sd) if sd > 0 else np.zeros_like(d)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = w[0] + w[1] * x
        # -[y log σ(z) + (1-y) log(1-σ(z))] = log(1 + e^z) - y z, computed stably
        nll = float(np.sum(np.logaddexp(0.0, z) - y * z)) + penalty * float(w @ w) / 2
        r = 1.0 / (1.0 + np.exp(-z)) - y
        return nll, np.array([r.sum(), (r * x).sum()]) + penalty * w

    theta = minimize(loss, np.zeros(2), jac=True, method="L-BFGS-B").x[0]
    return float(1.0 / (1.0 + np.exp(-theta)))


def win_rate_summary(p: Sequence[float | None], words_a: Sequence[int], words_b: Sequence[int], *,
                     groups: Sequence[str], n_resamples: int = DEFAULT_RESAMPLES,
                     seed: int = 0) -> dict:
    """Every head-to-head figure for pairs ``t`` (one entry per pair in each argument).

    ``n`` counts the valid pairs; ``invalid`` the pairs left out; ``mean_words_*`` are over all
    pairs. The interval resamples ``groups`` (the prompt, or task id, of each pair).

    >>> r = win_rate_summary([1.0, 0.5, None, 0.0, 1.0], [9, 5, 3, 2, 8], [4, 5, 3, 6, 4],
    ...                      groups=list("abcde"))
    >>> r["n"], r["win_rate"], r["wins"], r["ties"], r["losses"], r["invalid"], r["mean_words_a"]
    (4, 0.625, 2, 1, 1, 1, 5.4)
    """
    if not len(p) == len(words_a) == len(words_b) == len(groups):
        raise ValueError(f"need one p, two lengths and one group per pair; got {len(p)}, "
                         f"{len(words_a)}, {len(words_b)}, {len(groups)}")
    s, valid = outcomes(p)
    delta = (np.asarray(words_a, dtype=float) - np.asarray(words_b, dtype=float))[valid]
    kept = [g for g, v in zip(groups, valid) if v]
    low, high = bootstrap_ci(s, groups=kept, n_resamples=n_resamples, seed=seed)
    return {
        "n": int(s.size), "win_rate": float(s.mean()) if s.size else None,
        "ci_low": low, "ci_high": high,
        "wins": int((s == 1).sum()), "ties": int((s == 0.5).sum()), "losses": int((s == 0).sum()),
        "invalid": int((~valid).sum()), "lc_win_rate": lc_win_rate(s, delta),
        "mean_words_a": float(np.mean(words_a)) if len(words_a) else None,
        "mean_words_b": float(np.mean(words_b)) if len(words_b) else None,
    }


def paired_difference(x: Sequence[float], y: Sequence[float], *, groups: Sequence[str],
                      n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                      ) -> tuple[float | None, float | None, float | None]:
    """``(mean(x - y), ci_low, ci_high)`` for paired measurements (unit ``t`` in both), with a
    bootstrap over ``groups`` of the per-unit differences.

    >>> d, low, high = paired_difference([1, 1, 1, 0], [0, 1, 0, 0], groups=list("abcd"))
    >>> d, low <= d <= high
    (0.5, True)
    """
    if not len(x) == len(y) == len(groups):
        raise ValueError(f"need x, y and groups of one length; got {len(x)}, {len(y)}, {len(groups)}")
    diff = np.asarray(x, dtype=float) - np.asarray(y, dtype=float)
    if diff.size == 0:
        return None, None, None
    low, high = bootstrap_ci(diff, groups=groups, n_resamples=n_resamples, seed=seed)
    return float(diff.mean()), low, high
