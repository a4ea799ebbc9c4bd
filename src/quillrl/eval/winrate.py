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
  fit ``P(s=1) = sigmoid(θ + φ·tanh(Δ/sd(Δ)) + ψ·sign(Δ))``, ``Δ = words(a) - words(b)``, by maximum
  likelihood with a tie counted as half a win and half a loss, an L2 penalty ``λθ²/2`` on θ
  and a far smaller one on the covariates' coefficients (finite fits when length separates the
  outcomes); report ``sigmoid(θ)``, the win rate at equal length.
* Style-controlled win rate (:func:`sc_win_rate`, Arena-Hard's style control): the same fit
  with the normalised differences of words, header, list and bold counts as covariates
  (:func:`style_covariates`); report ``sigmoid(θ)``. In both fits θ carries a small L2 penalty and
  the covariates almost none, so a judge that decides by the covariates alone gives θ = 0 (see
  :func:`_fit`). Intervals: Wald, ``sigmoid(θ ± 1.96·se)``.
* Paired difference (:func:`paired_difference`): ``mean(x_t - y_t)`` over units measured on both
  sides, with the same prompt bootstrap applied to the per-unit differences, which keeps each
  unit's two measurements together.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .alignment import DEFAULT_RESAMPLES, bootstrap_ci, pair_scores

LC_PENALTY = 0.01  # λ on θ: small next to the n terms of the likelihood, enough to bound θ
COVARIATE_PENALTY = 1e-9  # λ on the style/length coefficients: only enough to keep them finite
Z95 = 1.959963984540054


def outcomes(p: Sequence[float | None]) -> tuple[np.ndarray, np.ndarray]:
    """``(s, valid)``: the outcome of every valid pair, and a mask of which pairs were valid.

    >>> s, valid = outcomes([0.9, 0.5, None, 0.2])
    >>> s.tolist(), valid.tolist()
    ([1.0, 0.5, 0.0], [True, True, False, True])
    """
    valid = np.array([v is not None for v in p], dtype=bool)
    return pair_scores([v for v in p if v is not None]), valid


def _fit(y: np.ndarray, x: np.ndarray, penalty: float) -> tuple[float, float]:
    """``(θ, se(θ))`` of ``P(s=1) = sigmoid(θ + x·φ)``, penalised ``λ_θ θ²/2 + λ_φ |φ|²/2``.

    θ carries ``penalty`` and φ only :data:`COVARIATE_PENALTY`. The asymmetry is what makes a
    judge that decides by the covariates alone come out at θ = 0: its outcomes are separated by
    x, so the likelihood is maximal along a ridge where |φ| grows without bound and θ is free,
    and a prior that binds θ harder than φ picks θ = 0 on that ridge. (With one penalty on both,
    the fit tends to the max-margin separator, whose θ is set by the few pairs nearest Δ = 0 and
    can sit anywhere: TTCW's length-only head-to-head gave 0.425.) ``se`` is from the inverse of
    the penalised Hessian.
    """
    from scipy.special import expit

    X = np.column_stack([np.ones_like(y), x]) if x.size else np.ones((y.size, 1))
    lam = np.full(X.shape[1], COVARIATE_PENALTY)
    lam[0] = penalty

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = X @ w
        # -[y log σ(z) + (1-y) log(1-σ(z))] = log(1 + e^z) - y z, computed stably
        nll = float(np.sum(np.logaddexp(0.0, z) - y * z)) + float(lam @ (w * w)) / 2
        return nll, X.T @ (expit(z) - y) + lam * w

    # Newton's method with a backtracking line search: near separation the optimum lies far out
    # along a flat ridge (|φ| in the hundreds), where first-order methods stop early.
    w = np.zeros(X.shape[1])
    f, g = loss(w)
    for _ in range(500):
        sig = expit(X @ w)
        hess = (X * (sig * (1 - sig))[:, None]).T @ X + np.diag(lam)
        step = np.linalg.solve(hess, g)
        t = 1.0
        while True:
            f_new, g_new = loss(w - t * step)
            if f_new <= f - 1e-4 * t * float(g @ step) or t < 1e-10:
                break
            t /= 2
        w, done = w - t * step, f - f_new < 1e-13 * (1 + abs(f))
        f, g = f_new, g_new
        if done:
            break
    sig = expit(X @ w)
    hess = (X * (sig * (1 - sig))[:, None]).T @ X + np.diag(lam)
    se = float(np.sqrt(max(np.linalg.inv(hess)[0, 0], 0.0)))
    return float(w[0]), se


def _sigmoid(t: float) -> float:
    return float(1.0 / (1.0 + np.exp(-t)))


def controlled_win_rate(s: Sequence[float], covariates: np.ndarray,
                        penalty: float = LC_PENALTY) -> dict | None:
    """The model term of a logistic (Bradley–Terry) fit of outcomes on covariates.

    ``P(s_t = 1) = sigmoid(θ + Σ_k φ_k x_tk)``, a tie counting half a win and half a loss;
    returns ``{"win_rate": sigmoid(θ), "ci_low", "ci_high", "theta", "se"}``, the interval
    ``sigmoid(θ ± 1.96·se)`` (Wald, from the penalised Hessian). ``None`` for no outcomes.
    """
    y = np.asarray(s, dtype=float)
    if y.size == 0:
        return None
    x = np.asarray(covariates, dtype=float).reshape(y.size, -1)
    theta, se = _fit(y, x, penalty)
    return {"win_rate": _sigmoid(theta), "ci_low": _sigmoid(theta - Z95 * se),
            "ci_high": _sigmoid(theta + Z95 * se), "theta": theta, "se": se}


def length_covariate(delta: Sequence[float]) -> np.ndarray:
    """``[tanh(Δ/sd(Δ)), sign(Δ)]`` per pair: AlpacaEval's length term (0 where Δ has no
    spread) and which side is longer.

    The sign term is ours. A judge that prefers the longer answer by whatever margin is a step
    in Δ; ``tanh`` fits a step only with a coefficient that grows as 1/(smallest |Δ|/sd), and
    along the way θ absorbs the imbalance of wins and losses (the TTCW case). With ``sign(Δ)``
    the step costs an O(1) coefficient and θ stays at its prior's 0.

    >>> length_covariate([10, -10, 0]).round(3).tolist()
    [[0.841, 1.0], [-0.841, -1.0], [0.0, 0.0]]
    """
    d = np.asarray(delta, dtype=float)
    sd = float(d.std()) if d.size else 0.0
    smooth = np.tanh(d / sd) if sd > 0 else np.zeros_like(d)
    return np.column_stack([smooth, np.sign(d)])


def lc_win_rate(s: Sequence[float], delta: Sequence[float], penalty: float = LC_PENALTY) -> float | None:
    """``sigmoid(θ)`` of the penalised fit of ``P(s=1) = sigmoid(θ + φ·tanh(Δ/sd(Δ)) + ψ·sign(Δ))``.

    With no spread in Δ the length term is 0 and the fit is the (shrunk) mean outcome. ``None``
    for no outcomes. See :func:`lc_summary` for the interval.

    >>> round(lc_win_rate([1, 0, 1, 0.5], [0, 0, 0, 0]), 3)  # no length spread: the mean 0.625, shrunk
    0.624
    >>> round(lc_win_rate([1, 1, 1, 0, 0, 0], [5, 6, 7, -5, -6, -7]), 3)  # all length: even at 0
    0.5
    >>> round(lc_win_rate([1, 1, 1, 1, 0], [1, 50, 60, 70, -2]), 3)  # all length, lopsided: still 0.5
    0.5
    """
    y = np.asarray(s, dtype=float)
    if y.shape != np.asarray(delta, dtype=float).shape:
        raise ValueError(f"{y.size} outcomes for {np.size(delta)} length differences")
    fit = controlled_win_rate(y, length_covariate(delta), penalty)
    return None if fit is None else fit["win_rate"]


def style_covariates(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Arena-Hard's style covariates of pairs: per feature, ``(a − b)/(a + b)`` (0 where both
    are 0), divided by its root mean square over the pairs (0 where it is 0).

    ``a`` and ``b`` are ``(pairs, features)`` counts (:func:`~quillrl.rewards.style_counts`).
    Arena-Hard also subtracts the mean; we do not, since in a head-to-head A is always the
    first side and the mean difference is part of what the model term must be freed from.
    A last column is ``sign(a₀ − b₀)`` (which side is longer), as in :func:`length_covariate`.

    >>> style_covariates(np.array([[10, 0], [30, 2]]), np.array([[10, 0], [10, 0]])).round(3).tolist()
    [[0.0, 0.0, 0.0], [1.414, 1.414, 1.0]]
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    total = a + b
    x = np.divide(a - b, total, out=np.zeros_like(total), where=total > 0)
    rms = np.sqrt((x ** 2).mean(axis=0)) if x.size else np.zeros(x.shape[1:])
    x = np.divide(x, rms, out=np.zeros_like(x), where=rms > 0)
    return np.column_stack([x, np.sign(a[:, 0] - b[:, 0])])


def sc_win_rate(s: Sequence[float], counts_a: Sequence[Sequence[float]], counts_b: Sequence[Sequence[float]],
                penalty: float = LC_PENALTY) -> dict | None:
    """Style-controlled win rate (Arena-Hard's style control): :func:`controlled_win_rate` with
    :func:`style_covariates` of (words, headers, list items, bold spans) as covariates; the
    model term ``sigmoid(θ)`` is the win rate at equal length and equal markdown.

    >>> r = sc_win_rate([1, 1, 0, 1], [[9, 0, 1, 0]] * 4, [[3, 0, 0, 0]] * 2 + [[20, 0, 0, 0]] * 2)
    >>> 0.45 < r["win_rate"] < 0.55
    True
    """
    y = np.asarray(s, dtype=float)
    if y.size == 0:
        return None
    x = style_covariates(np.asarray(counts_a, dtype=float).reshape(y.size, -1),
                         np.asarray(counts_b, dtype=float).reshape(y.size, -1))
    return controlled_win_rate(y, x, penalty)


def win_rate_summary(p: Sequence[float | None], words_a: Sequence[int], words_b: Sequence[int], *,
                     groups: Sequence[str], n_resamples: int = DEFAULT_RESAMPLES,
                     seed: int = 0, style_a: Sequence[Sequence[int]] | None = None,
                     style_b: Sequence[Sequence[int]] | None = None) -> dict:
    """Every head-to-head figure for pairs ``t`` (one entry per pair in each argument).

    ``n`` counts the valid pairs; ``invalid`` the pairs left out; ``mean_words_*`` are over all
    pairs. The interval resamples ``groups`` (the prompt, or task id, of each pair).
    ``style_*``: each pair's (words, headers, lists, bold) counts
    (:func:`~quillrl.rewards.style_counts`); with them the summary has ``sc_win_rate`` and its
    Wald interval ``sc_ci_low``/``sc_ci_high`` (else ``None``). ``lc_ci_low``/``lc_ci_high`` are
    the LC win rate's Wald interval.

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
    lc = controlled_win_rate(s, length_covariate(delta)) if s.size else None
    sc = None
    if style_a is not None and style_b is not None and s.size:
        sc = sc_win_rate(s, np.asarray(style_a, dtype=float)[valid], np.asarray(style_b, dtype=float)[valid])
    return {
        "n": int(s.size), "win_rate": float(s.mean()) if s.size else None,
        "ci_low": low, "ci_high": high,
        "wins": int((s == 1).sum()), "ties": int((s == 0.5).sum()), "losses": int((s == 0).sum()),
        "invalid": int((~valid).sum()), "lc_win_rate": lc and lc["win_rate"],
        "lc_ci_low": lc and lc["ci_low"], "lc_ci_high": lc and lc["ci_high"],
        "sc_win_rate": sc and sc["win_rate"], "sc_ci_low": sc and sc["ci_low"],
        "sc_ci_high": sc and sc["ci_high"],
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
