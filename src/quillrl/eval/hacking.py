"""Reward-hacking and length signals of a head-to-head, as pure functions.

A policy trained on a judge's preference can win by being longer, by padding to the token limit
or by repeating itself, and can give up constraints on the way; each signal below shows one of
these (docs/design.md, "Policy evaluation"):

* length: mean and median whitespace words of each side and the change (A - B);
* clipped share: responses that stopped at the token limit (``finish_reason == "length"``), a
  story cut off mid-sentence, which cannot end as asked;
* repetition: distinct-n, unique n-grams / all n-grams over a side's responses, n = 2, 3
  (lower = more repetitive);
* length preference: Spearman's ρ of the judge's ``p_t`` with ``Δ = words(a) - words(b)``;
  near 1 the judge mostly rewards length;
* constraints: the pass-rate change per constraint id (A - B).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..rewards.style import word_count


def distinct_n(texts: Sequence[str], n: int) -> float | None:
    """Unique word n-grams over all n-grams of ``texts`` (lower-cased, whitespace words; an
    n-gram never spans two texts). ``None`` when no text has ``n`` words.

    >>> distinct_n(["the cat the cat", "a dog"], 2)
    0.75
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    grams = [tuple(words[i:i + n]) for words in (t.lower().split() for t in texts)
             for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


def clipped_share(finish_reasons: Sequence[str | None]) -> float | None:
    """Share of responses cut at the token limit, among those whose finish reason is known.

    >>> clipped_share(["length", "stop", None, "stop"])
    0.3333333333333333
    """
    known = [f for f in finish_reasons if f is not None]
    return sum(f == "length" for f in known) / len(known) if known else None


def length_preference(p: Sequence[float | None], delta: Sequence[float]) -> float | None:
    """Spearman's ρ of ``p_t`` with ``Δ_t`` over the valid pairs; ``None`` when either is
    constant (ρ undefined) or fewer than 3 pairs are valid.

    >>> length_preference([0.9, 0.5, None, 0.1], [10, 0, 99, -3])
    1.0
    """
    from scipy.stats import spearmanr

    kept = [(float(v), float(d)) for v, d in zip(p, delta, strict=True) if v is not None]
    if len(kept) < 3 or len({v for v, _ in kept}) < 2 or len({d for _, d in kept}) < 2:
        return None
    rho = spearmanr([v for v, _ in kept], [d for _, d in kept]).statistic
    return None if np.isnan(rho) else float(rho)


def side_signals(texts: Sequence[str], finish_reasons: Sequence[str | None]) -> dict[str, Any]:
    """One side's length, clipping and repetition figures."""
    words = [word_count(t) for t in texts]
    return {"mean_words": float(np.mean(words)) if words else None,
            "median_words": float(np.median(words)) if words else None,
            "clipped_share": clipped_share(finish_reasons),
            "distinct_2": distinct_n(texts, 2), "distinct_3": distinct_n(texts, 3)}


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def hacking_signals(a: dict[str, Any], b: dict[str, Any], *, p: Sequence[float | None] = (),
                    delta: Sequence[float] = (),
                    pass_a: dict[str, float | None] | None = None,
                    pass_b: dict[str, float | None] | None = None) -> dict[str, Any]:
    """Both sides' :func:`side_signals`, their changes (A - B), the judge's length preference,
    and the pass-rate change per constraint id (ids of either side; ``None`` where one lacks it).

    >>> s = hacking_signals({"mean_words": 60.0, "clipped_share": 0.5}, {"mean_words": 40.0,
    ...     "clipped_share": 0.25}, pass_a={"x": 0.5}, pass_b={"x": 0.75, "y": 1.0})
    >>> s["change"]["mean_words"], s["change"]["clipped_share"], s["pass_rate_change"]
    (20.0, 0.25, {'x': -0.25, 'y': None})
    """
    pass_a, pass_b = pass_a or {}, pass_b or {}
    return {"a": a, "b": b,
            "change": {k: _minus(a.get(k), b.get(k)) for k in a if k in b},
            "length_preference_spearman": length_preference(p, delta) if len(p) else None,
            "pass_rate_change": {k: _minus(pass_a.get(k), pass_b.get(k))
                                 for k in sorted(set(pass_a) | set(pass_b))}}
