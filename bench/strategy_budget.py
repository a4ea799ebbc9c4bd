"""Strategies at equal judge budget (issue 21 §2): simulated judges of known noise here, real
groups judged by the embedded GenRM in ``bench/strategy_budget_real.py``; both share the code below.

    PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python bench/strategy_budget.py --groups 100

Every strategy's rewards come from :class:`quillrl.scoring.GroupRewards` — what ``train policy``
and ``serve-reward`` score with: the rule-fixed order, the comparisons the strategy lists (or
swiss's rounds), the fold, constraint passes and the RLMR mix (``mix:`` section defaults) —
with a judge that answers every ``p(a ≻ b)`` from a table (:class:`TableJudge`). Nothing here
restates a strategy; a strategy asks the table only for the pairs it needs.

Simulation: each group has n latent qualities q ~ N(0, 1); the table holds p(i ≻ j) =
clip(sigmoid((q_i − q_j)/T) + ε, 0, 1), ε ~ N(0, noise), one draw per unordered pair
(p(j ≻ i) = 1 − p(i ≻ j)); k ~ U{1, n − 1} random members violate their constraints.

Per (n, strategy), over groups: comparisons per group (pairs the judge was asked for), Kendall τ
of the writing rewards with the full round-robin's on the same table (mean, and a 95% bootstrap
interval over groups), the share of groups with a passer and a violator where a violator's
advantage r_i − mean(r) is ≥ 0 (RLMR's guarantee: must be 0), and the mean within-group
variance of the writing reward (swiss: Bradley–Terry strengths, log-odds scale, not comparable
with the others' [−1, 1] scale).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy.stats import kendalltau

from quillrl.judges.base import Judge, Judgment, invalid_judgment, scored_judgment
from quillrl.scoring import GroupRewards, MixSection


def arms(n: int) -> list[tuple[str, int | None]]:
    """``(strategy, swiss rounds)`` compared at group size n: pivot (n − 1 comparisons),
    circular (n), swiss with 2 rounds (2⌊n/2⌋: circular's budget), swiss with the default
    ⌈log2 n⌉ rounds and with twice that, and round-robin (n(n − 1)/2), the reference."""
    log2 = max(1, math.ceil(math.log2(n)))
    rounds = sorted({2, log2, 2 * log2})
    return [("pivot", None), ("circular", None), *[("swiss", r) for r in rounds], ("round_robin", None)]


def arm_name(strategy: str, rounds: int | None) -> str:
    return f"swiss, {rounds} rounds" if strategy == "swiss" else strategy


class TableJudge(Judge):
    """A judge that answers ``p(a ≻ b)`` from ``table[(prompt, a, b)]`` (``None``: a judgment
    that failed); a pair not in the table raises, so a strategy can never be scored on an
    answer nobody gave. ``asked`` counts the pairs it was asked for."""

    name = "table"

    def __init__(self, table: dict[tuple[str, str, str], float | None]):
        self.table, self.asked = table, 0

    def _compare_many(self, pairs: list) -> list[Judgment]:
        self.asked += len(pairs)
        out = []
        for prompt, a, b in pairs:
            p = self.table[(prompt, a, b)]
            out.append(invalid_judgment("the judge gave no valid verdict") if p is None else scored_judgment(p))
        return out


@dataclass
class Group:
    """One group: its id (salts its rule-fixed order), prompt, texts, and either each sample's
    constraints (verified by quillrl's verifier) or, simulated, whether each sample passed."""

    gid: str
    prompt: str
    texts: list[str]
    constraints: list[Any] | None = None
    passed: list[bool] | None = None


def score(group: Group, strategy: str, rounds: int | None, judge: Judge, seed: int = 0):
    """The group's :class:`~quillrl.scoring.group_rewards.GroupRewardBatch` under one strategy,
    computed as the trainer and the reward server compute it."""
    n = len(group.texts)
    scorer = GroupRewards(judge, strategy=strategy, rounds=rounds, seed=seed, mix=MixSection().model_dump())
    checked = None if group.passed is None else [(bool(p), 0, "") for p in group.passed]
    return scorer.compute([group.prompt] * n, group.texts, group.constraints or [[]] * n, group_size=n,
                          group_ids=[group.gid], checked=checked)


def kendall(w: np.ndarray, reference: np.ndarray) -> float:
    """Kendall τ-b of two reward vectors; 0 where either is constant (τ is undefined there)."""
    tau = kendalltau(w, reference).statistic
    return 0.0 if np.isnan(tau) else float(tau)


def violator_nonneg(rewards: np.ndarray, passed: np.ndarray) -> bool | None:
    """Whether some violator's advantage ``r_i − mean(r)`` is ≥ 0; None for a group without
    both a passer and a violator (RLMR's guarantee is about those groups)."""
    passed = np.asarray(passed, dtype=bool)
    if passed.all() or not passed.any():
        return None
    return bool(np.any((rewards - rewards.mean())[~passed] >= 0))


def bootstrap_ci(values: Sequence[float], reps: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of ``values``, resampling them (groups) with replacement."""
    v = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(reps, len(v)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def evaluate(groups: Sequence[Group], judge: TableJudge, n: int) -> list[dict[str, Any]]:
    """One row per strategy of :func:`arms` over ``groups`` (all of size n), scored from
    ``judge``'s table; see the module docstring for the columns."""
    reference = [score(g, "round_robin", None, judge).writing for g in groups]
    rows = []
    for strategy, rounds in arms(n):
        taus, bad, mixed, var, cmp = [], 0, 0, [], []
        for g, ref in zip(groups, reference):
            batch = score(g, strategy, rounds, judge)
            taus.append(kendall(batch.writing, ref))
            flag = violator_nonneg(batch.rewards, batch.passed)
            mixed += flag is not None
            bad += bool(flag)
            var.append(float(batch.writing.var()))
            cmp.append(batch.judgments)
        lo, hi = bootstrap_ci(taus)
        rows.append({"n": n, "strategy": arm_name(strategy, rounds), "groups": len(groups),
                     "comparisons": float(np.mean(cmp)), "kendall_tau": float(np.mean(taus)),
                     "kendall_tau_ci95": [lo, hi], "mixed_groups": mixed,
                     "violator_nonneg_share": bad / mixed if mixed else None,
                     "within_group_var": float(np.mean(var))})
    return rows


def simulated_groups(n: int, count: int, T: float, noise: float,
                     rng: np.random.Generator) -> tuple[list[Group], dict]:
    """``count`` simulated groups of n and the table of their judge's answers."""
    groups, table = [], {}
    for g in range(count):
        q = rng.normal(size=n)
        prompt, texts = f"group {n}:{g}", [f"sample {i}" for i in range(n)]
        for i in range(n):
            for j in range(i + 1, n):
                p = float(np.clip(1 / (1 + np.exp(-(q[i] - q[j]) / T)) + rng.normal(0, noise), 0, 1))
                table[(prompt, texts[i], texts[j])], table[(prompt, texts[j], texts[i])] = p, 1 - p
        passed = np.ones(n, bool)
        passed[rng.permutation(n)[:int(rng.integers(1, n))]] = False
        groups.append(Group(f"sim:{n}:{g}", prompt, texts, passed=passed.tolist()))
    return groups, table


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as the docs/results.md table."""
    lines = ["| n | strategy | comparisons | τ vs round-robin [95% CI] | violator adv. ≥ 0 (mixed groups) "
             "| within-group variance |", "|---:|---|---:|---|---:|---:|"]
    for r in rows:
        lo, hi = r["kendall_tau_ci95"]
        share = f"{_share(r['violator_nonneg_share'])} ({r['mixed_groups']})"
        if "single_constraint_mixed_groups" in r:  # bench/strategy_budget_real.py's extra check
            share += (f"; each constraint alone: {_share(r['single_constraint_violator_nonneg_share'])} "
                      f"({r['single_constraint_mixed_groups']})")
        lines.append(f"| {r['n']} | {r['strategy']} | {r['comparisons']:.1f} | {r['kendall_tau']:.2f} "
                     f"[{lo:.2f}, {hi:.2f}] | {share} | {r['within_group_var']:.3g} |")
    return "\n".join(lines)


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=100)
    ap.add_argument("--sizes", default="4,8,16")
    ap.add_argument("--T", type=float, default=1.0)
    ap.add_argument("--noise", type=float, default=0.1)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for n in map(int, args.sizes.split(",")):
        groups, table = simulated_groups(n, args.groups, args.T, args.noise, rng)
        for row in evaluate(groups, TableJudge(table), n):
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(markdown(rows))


if __name__ == "__main__":
    main()
