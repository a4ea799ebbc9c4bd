"""Constraint pass rates of a policy's responses: overall, per constraint id and per family.

Definitions (docs/design.md, "Policy evaluation"). The unit is a response, one per (task,
sample). A response *passes* iff it passes every constraint of its task (``verify``, strict
unless ``loose``); per constraint id (or family), the unit is a response whose task carries that
id (or an id of that family), and it passes iff all its constraints of that id (family) pass.
Responses to tasks without constraints have nothing to pass: they are counted apart
(``no_constraints``) and stay out of every rate. Every interval is a 95% percentile bootstrap
that resamples tasks, since a task's samples are not independent.

The input side is checked, never guessed: responses whose id matches no task are counted and
named (``unmatched``), as are tasks that got no response (``unanswered``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..constraints import constraint_family, count_verdicts, verify
from .alignment import DEFAULT_RESAMPLES, bootstrap_ci
# one joiner for every verb (eval/ifeval.py); re-exported for headtohead and the CLI
from .ifeval import NAMED, join, response_key  # noqa: F401

def verdict_rows(pairs: Sequence[tuple[Any, Any]], *, loose: bool = False,
                 free_text_verifier: Any = None) -> list[dict[str, Any]]:
    """One row per response: its key, whether it passed, how many of its verdicts are undecided,
    and every constraint's verdict, family and reason (the ``--out`` lines of ``eval
    constraints``). ``free_text_verifier`` judges ``free_text`` constraints, as in training;
    passed and undecided follow :func:`~quillrl.constraints.count_verdicts`."""
    rows = []
    for task, response in pairs:
        v = verify(response.response, task.constraints, loose=loose, prompt=task.prompt,
                   free_text_verifier=free_text_verifier)
        rows.append({
            "id": task.id, "sample": response_key(response)[1],
            "passed": v.passed if task.constraints else None, "undecided": v.undecided,
            "constraints": [{"id": r.id, "family": constraint_family(r.id), "passed": r.passed,
                             "reason": r.reason} for r in v.results],
        })
    return rows


def _rate(units: list[tuple[str, bool]], n_resamples: int, seed: int) -> dict[str, Any]:
    scores = [float(p) for _, p in units]
    low, high = bootstrap_ci(scores, groups=[g for g, _ in units], n_resamples=n_resamples, seed=seed)
    return {"n": len(units), "pass_rate": sum(scores) / len(scores) if scores else None,
            "ci_low": low, "ci_high": high}


def grouped_passes(rows: Sequence[dict[str, Any]], key: str) -> dict[str, list[tuple[str, bool]]]:
    """Per value of ``key`` (``"id"`` or ``"family"``), one ``(task id, passed)`` per response
    whose task carries it; passed iff all its constraints with that value pass."""
    out: dict[str, list[tuple[str, bool]]] = {}
    for row in rows:
        verdicts: dict[str, list[bool | None]] = {}
        for c in row["constraints"]:
            verdicts.setdefault(c[key], []).append(c["passed"])
        for value, of_value in verdicts.items():
            out.setdefault(value, []).append((row["id"], count_verdicts(of_value).passed))
    return dict(sorted(out.items()))


def pass_rates(rows: Sequence[dict[str, Any]], *, n_resamples: int = DEFAULT_RESAMPLES,
               seed: int = 0) -> dict[str, Any]:
    """Overall, per family and per constraint id pass rates with intervals (module docstring).

    >>> rows = [{"id": "t1", "sample": 0, "passed": True, "constraints": [
    ...             {"id": "creative:ends_with", "family": "creative", "passed": True}]},
    ...         {"id": "t2", "sample": 0, "passed": False, "constraints": [
    ...             {"id": "creative:ends_with", "family": "creative", "passed": True},
    ...             {"id": "punctuation:no_comma", "family": "ifeval", "passed": False}]},
    ...         {"id": "t3", "sample": 0, "passed": None, "constraints": []}]
    >>> s = pass_rates(rows)
    >>> s["n"], s["pass_rate"], s["no_constraints"], s["by_family"]["creative"]["pass_rate"]
    (2, 0.5, 1, 1.0)
    >>> s["undecided"], s["undecided_responses"]
    (0, 0)
    """
    scored = [r for r in rows if r["constraints"]]
    overall = _rate([(r["id"], r["passed"]) for r in scored], n_resamples, seed)
    return {**overall, "no_constraints": len(rows) - len(scored), **undecided_counts(scored),
            "by_family": {k: _rate(v, n_resamples, seed)
                          for k, v in grouped_passes(scored, "family").items()},
            "by_constraint": {k: _rate(v, n_resamples, seed)
                              for k, v in grouped_passes(scored, "id").items()}}


def undecided_counts(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Undecided verdicts among ``rows`` (:func:`verdict_rows`), counted apart from violations
    and named (docs/design.md, "Undecided constraints"): how many constraint verdicts, how many
    responses they fall in, and the first ``task id constraint id`` of them."""
    per_row = [count_verdicts(c["passed"] for c in r["constraints"]).undecided for r in rows]
    named = [f"{r['id']} {c['id']}" for r in rows for c in r["constraints"] if c["passed"] is None]
    return {"undecided": sum(per_row), "undecided_responses": sum(n > 0 for n in per_row),
            "undecided_ids": named[:NAMED]}


def input_counts(left: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready account of what did not join (counts, and the first ids named)."""
    return {"unmatched_responses": len(left["unmatched"]),
            "unmatched_ids": left["unmatched"][:NAMED],
            "duplicate_responses": left["duplicates"],
            "unanswered_tasks": len(left["unanswered"]),
            "unanswered_ids": left["unanswered"][:NAMED]}
