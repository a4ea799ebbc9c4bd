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
from typing import Any

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


# -- scoring judges' runs against the labels (``quillrl eval alignment``) --------------------------

def score_runs(runs: list[list[dict]], pairs: list, *, seed: int, n_resamples: int,
               bootstrap_by: str) -> dict[str, Any]:
    """Every judge run scored on ``pairs`` (records in pair order): ``rows`` (one summary each),
    ``labels``, ``curves`` (reliability bins by label), ``diffs`` (paired differences against
    the first run) and ``table`` (both as markdown)."""
    from .alignment_report import markdown_table

    rows, labels, curves = [], [], {}
    for records in runs:
        row, bins = score(records, pairs, seed=seed, n_resamples=n_resamples,
                          bootstrap_by=bootstrap_by)
        rows.append(row)
        label = row["judge"] + (f" ({row['mode']}, {swap_label(row)})" if row["mode"] else "")
        labels.append(label)
        curves[label] = bins
    diffs = paired_rows(runs, rows, pairs, seed=seed, n_resamples=n_resamples,
                        bootstrap_by=bootstrap_by)
    table = markdown_table(rows) + ("\n" + paired_table(diffs) if diffs else "")
    return {"rows": rows, "labels": labels, "curves": curves, "diffs": diffs, "table": table}


def with_first_order(runs: list[list[dict]], add: bool = True) -> list[list[dict]]:
    """Each swap run followed by its single-order (AB) view (:func:`~quillrl.eval.judging.first_order`):
    the same judge without swap, at no extra cost."""
    from .judging import first_order

    return [view for records in runs
            for view in ([records, [first_order(r) for r in records]]
                         if records[0]["swap"] and add else [records])]


def score(records: list[dict], pairs: list, *, seed: int, n_resamples: int,
          bootstrap_by: str) -> tuple[dict[str, Any], list]:
    """One judge's summary row and its reliability bins, from its records (in pair order)."""
    from ..rewards.style import word_count
    from .hacking import length_preference

    p_chosen = [r["p_chosen"] for r in records]
    groups = [p.prompt for p in pairs] if bootstrap_by == "prompt" else None
    row = alignment_summary(p_chosen, [r["flipped"] for r in records], groups=groups,
                            n_resamples=n_resamples, seed=seed)
    seconds = sum(r["cost"]["seconds"] for r in records)
    first = records[0]
    row.update(judge=first["judge"], mode=first["mode"], swap=first["swap"],
               **({"view": first["view"]} if "view" in first else {}),
               # share of decided verdicts naming slot A: far from 0.5 is position bias, since
               # the chosen text sits in A for about half the pairs
               a_share=_mean_known(float(r["verdict"] == "A") for r in records if r["verdict"]),
               mean_entropy=_mean_known(r["entropy"] for r in records),
               # Spearman's rho of p(chosen) with len(chosen) - len(rejected) in words: near 1 is
               # a judge that mostly counts words (docs/design.md, "Policy evaluation")
               length_preference=length_preference(
                   p_chosen, [word_count(p.chosen) - word_count(p.rejected) for p in pairs]),
               force_verdict=bool(first.get("force_verdict")),
               forced_rate=_mean_known(float(bool(r.get("forced")) and r["valid"]) for r in records),
               seconds_per_pair=seconds / len(records),
               completion_tokens=sum(r["cost"]["completion_tokens"] for r in records))
    return row, reliability_bins(p_chosen)


def paired_rows(runs: list[list[dict]], rows: list[dict], pairs: list, *, seed: int,
                n_resamples: int, bootstrap_by: str) -> list[dict[str, Any]]:
    """Each judge's accuracy minus the first judge's on the same pairs, with a paired bootstrap
    interval (by pair or by prompt, as the table's): two judges' separate intervals overlap far
    more often than their difference's interval contains 0, so "which judge is better" is read
    here, not from the table."""
    from .winrate import paired_difference  # winrate imports this module

    groups = [p.prompt for p in pairs] if bootstrap_by == "prompt" else [p.id for p in pairs]
    base = pair_scores([r["p_chosen"] for r in runs[0]])
    out = []
    for records, row in zip(runs[1:], rows[1:]):
        diff, low, high = paired_difference(pair_scores([r["p_chosen"] for r in records]), base,
                                            groups=groups, n_resamples=n_resamples, seed=seed)
        out.append({"judge": row_label(row), "minus": row_label(rows[0]), "accuracy_diff": diff,
                    "ci_low": low, "ci_high": high,
                    "excludes_0": None if low is None else bool(low > 0 or high < 0)})
    return out


def paired_table(diffs: list[dict[str, Any]]) -> str:
    """The paired differences as a markdown table (empty for a single judge)."""
    if not diffs:
        return ""
    lines = ["| judge | − judge | accuracy difference (95% CI, paired) | excludes 0 |",
             "|---|---|---:|---|"]
    lines += [f"| {d['judge']} | {d['minus']} | {100 * d['accuracy_diff']:+.1f} points "
              f"[{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}] | "
              f"{'yes' if d['excludes_0'] else 'no'} |" for d in diffs]
    return "\n".join(lines) + "\n"


def row_label(row: dict[str, Any]) -> str:
    return f"`{row['judge']}`" + (f" ({row['mode']}, {swap_label(row)})" if row["mode"] else "")


def swap_label(row: dict[str, Any]) -> str:
    return "swap" if row["swap"] else "AB of swap run" if row.get("view") else "no swap"


def _mean_known(values) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def saved_judgments(paths: list, pairs: list, skip_invalid: bool = False,
                    on_skipped: Any = None) -> list[list[dict]]:
    """Records from ``quillrl judge`` / ``eval alignment --out`` files, one list per judge setting
    (judge, mode, swap, order seed), each in the order of ``pairs``. Every line is validated
    like a data file (``quillrl.data.read_judgments``), and one setting may not judge a pair
    twice, even across files. Every selected pair must have a record: scoring a judge on a
    subset of the pairs would compare it unfairly. ``on_skipped(path, result)`` sees each file's
    result (to list its skipped lines)."""
    from ..data import read_judgments
    from ..errors import ConfigError, DataError

    runs: dict[tuple, dict[str, dict]] = {}
    first_seen: dict[tuple, str] = {}
    for path in paths:
        result = read_judgments(path, skip_invalid=skip_invalid)
        if on_skipped is not None:
            on_skipped(path, result)
        if not result.records:
            raise DataError("holds no judgments" + (
                f" ({len(result.skipped)} bad lines skipped)" if result.skipped else ""),
                path=str(path))
        for record in result.records:
            key = record.setting()
            if (key, record.id) in first_seen and first_seen[key, record.id] != str(path):
                raise DataError(f"judge {key[0]!r} (mode {key[1]}, swap {key[2]}, order seed "
                                f"{key[3]}) judged pair {record.id!r} in "
                                f"{first_seen[key, record.id]} too; give each judgment once",
                                path=str(path), field="id")
            first_seen[key, record.id] = str(path)
            runs.setdefault(key, {})[record.id] = record.to_json_dict()
    out = []
    for key, by_id in runs.items():
        missing = [p.id for p in pairs if p.id not in by_id]
        if missing:
            raise ConfigError(f"--judgments: judge {key[0]!r} (mode {key[1]}, swap {key[2]}) has "
                              f"no judgment for {len(missing)} of the {len(pairs)} pairs "
                              f"(first: {missing[0]}); finish it with `quillrl judge` (it "
                              "resumes) or select the pairs it judged (the same --limit, or "
                              "--sample and --seed)")
        out.append([by_id[p.id] for p in pairs])
    return out
