"""A against B on the same tasks: pair two responses files, then read the judge's records.

Pairing (docs/design.md, "Policy evaluation"): A's and B's responses are joined to the tasks
(:func:`~quillrl.eval.constraint_rates.join`) and paired by ``(task id, sample)``; only keys on
both sides are judged, and each side's leftovers are counted and named. A pair becomes a
:class:`~quillrl.data.PreferencePair` with A as ``chosen`` and B as ``rejected``, so the judging
code of ``quillrl judge`` (the placement coin, swap, resumable records) runs on it unchanged and
a record's ``p_chosen`` is ``p_t = p(a_t ≻ b_t)``. The pair id is ``"<task id>#<sample>"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..data.records import PreferencePair
from ..rewards.style import style_counts, word_count
from .constraint_rates import NAMED, grouped_passes, join, verdict_rows
from .hacking import hacking_signals, side_signals
from .winrate import DEFAULT_RESAMPLES, win_rate_summary


def pair_id(task_id: str, sample: int) -> str:
    """The id of the judged pair for ``(task id, sample)``.

    >>> pair_id("cw003-c0", 1)
    'cw003-c0#1'
    """
    return f"{task_id}#{sample}"


def pair_responses(tasks: Sequence[Any], a: Sequence[Any], b: Sequence[Any],
                   ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``[{"task", "sample", "a", "b", "pair"}]`` for every ``(id, sample)`` both sides
    answered, in task order, and the counts of what was left out on each side."""
    joined_a, left_a = join(tasks, a)
    joined_b, left_b = join(tasks, b)
    by_key_b = {(t.id, _sample(r)): r for t, r in joined_b}
    keys_a = {(t.id, _sample(r)) for t, r in joined_a}
    units = []
    for task, ra in joined_a:
        rb = by_key_b.get((task.id, _sample(ra)))
        if rb is not None:
            k = _sample(ra)
            units.append({"task": task, "sample": k, "a": ra, "b": rb,
                          "pair": PreferencePair(id=pair_id(task.id, k), prompt=task.prompt,
                                                 chosen=ra.response, rejected=rb.response,
                                                 principle=task.principle, criteria=task.criteria)})
    only_a = [pair_id(*k) for k in sorted(keys_a - set(by_key_b))]
    only_b = [pair_id(*k) for k in sorted(set(by_key_b) - keys_a)]
    counts = {"only_a": len(only_a), "only_a_ids": only_a[:NAMED],
              "only_b": len(only_b), "only_b_ids": only_b[:NAMED],
              "unmatched_a": len(left_a["unmatched"]), "unmatched_a_ids": left_a["unmatched"][:NAMED],
              "unmatched_b": len(left_b["unmatched"]), "unmatched_b_ids": left_b["unmatched"][:NAMED],
              "tasks_judged": len({u["task"].id for u in units})}
    return units, counts


def _sample(response: Any) -> int:
    return int(response.sample or 0)


def pass_rate_by_id(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Pass rate per constraint id (a response counts for each id its task carries)."""
    return {k: sum(p for _, p in v) / len(v) for k, v in grouped_passes(rows, "id").items()}


def head_to_head(units: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]], *,
                 n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                 rows_a: Sequence[dict[str, Any]] | None = None,
                 rows_b: Sequence[dict[str, Any]] | None = None,
                 free_text_verifier: Any = None) -> dict[str, Any]:
    """The win-rate summary of judged ``units`` (``records`` in the same order, from
    ``judge_pairs``) with every hacking signal; ``rows_*`` are the sides' constraint verdicts
    (computed here when not given, ``free_text`` ones by ``free_text_verifier``). Bootstrap
    groups are task ids."""
    if len(units) != len(records):
        raise ValueError(f"{len(units)} pairs but {len(records)} judgments")
    p = [r["p_chosen"] for r in records]
    words_a = [word_count(u["a"].response) for u in units]
    words_b = [word_count(u["b"].response) for u in units]
    summary = win_rate_summary(p, words_a, words_b, groups=[u["task"].id for u in units],
                               n_resamples=n_resamples, seed=seed,
                               style_a=[tuple(style_counts(u["a"].response)) for u in units],
                               style_b=[tuple(style_counts(u["b"].response)) for u in units])
    if rows_a is None:
        rows_a = verdict_rows([(u["task"], u["a"]) for u in units], free_text_verifier=free_text_verifier)
    if rows_b is None:
        rows_b = verdict_rows([(u["task"], u["b"]) for u in units], free_text_verifier=free_text_verifier)
    signals = hacking_signals(
        side_signals([u["a"].response for u in units], [u["a"].finish_reason for u in units]),
        side_signals([u["b"].response for u in units], [u["b"].finish_reason for u in units]),
        p=p, delta=[x - y for x, y in zip(words_a, words_b)],
        pass_a=pass_rate_by_id(rows_a), pass_b=pass_rate_by_id(rows_b))
    return {**summary, "hacking": signals}


def before_after(units: Sequence[dict[str, Any]], rows_trained: Sequence[dict[str, Any]],
                 rows_base: Sequence[dict[str, Any]], *, n_resamples: int = DEFAULT_RESAMPLES,
                 seed: int = 0) -> dict[str, Any]:
    """The paired pass-rate difference (trained − base) overall and per constraint id, on the
    units whose task has constraints, with the bootstrap by task; rows are in ``units`` order.

    Returns ``{"n", "diff", "ci_low", "ci_high", "by_constraint": {id: (diff, low, high)}}``.
    """
    from .winrate import paired_difference

    keep = [i for i, u in enumerate(units) if u["task"].constraints]
    groups = [units[i]["task"].id for i in keep]
    diff, low, high = paired_difference([float(rows_trained[i]["passed"]) for i in keep],
                                        [float(rows_base[i]["passed"]) for i in keep],
                                        groups=groups, n_resamples=n_resamples, seed=seed)
    per_id = {}
    trained_by_id = grouped_passes([rows_trained[i] for i in keep], "id")
    base_by_id = grouped_passes([rows_base[i] for i in keep], "id")
    for cid, t in trained_by_id.items():
        b = base_by_id[cid]  # same tasks on both sides, so the same units in the same order
        per_id[cid] = paired_difference([float(p) for _, p in t], [float(p) for _, p in b],
                                        groups=[g for g, _ in t], n_resamples=n_resamples, seed=seed)
    return {"n": len(keep), "diff": diff, "ci_low": low, "ci_high": high, "by_constraint": per_id}
