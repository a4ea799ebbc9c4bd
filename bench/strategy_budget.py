"""Strategies at equal judge budget, simulated (issue 21 §2a).

    PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python bench/strategy_budget.py --groups 200

Each group: n latent qualities q ~ N(0, 1); the judge answers p(i ≻ j) = clip(sigmoid((q_i − q_j)/T)
+ ε, 0, 1), ε ~ N(0, noise). The reference ranking is the full round-robin on the same judge's
answers. Per strategy: comparisons per group, Kendall τ with round-robin, the share of groups
where an RLMR-mixed violator (k random violators) gets a non-negative advantage, and the mean
within-group variance of the writing reward. (§2b, real GenRM groups, is not in this script.)
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from scipy.stats import kendalltau

from quillrl.rewards import comparisons_needed, mix_rewards, pairwise_rewards, preference_matrix, swiss_pairs


def rewards(strategy, n, P, rng, rounds=None):
    if strategy == "swiss":
        p = np.full((n, n), np.nan)
        used = 0
        for r in range(rounds):
            pairs = swiss_pairs(n, p, r, list(rng.permutation(n)) if r == 0 else None)
            for i, j in pairs:
                p[i, j] = P[i, j]
            used += len(pairs)
        return pairwise_rewards(p, "swiss"), used
    order = list(rng.permutation(n))
    pivot = int(order[0]) if strategy == "pivot" else None
    pairs = comparisons_needed(strategy, n, pivot=pivot, order=order if strategy == "circular" else None)
    p = preference_matrix(n, pairs, [P[i, j] for i, j in pairs])
    return pairwise_rewards(p, strategy, pivot=pivot), len(pairs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=200)
    ap.add_argument("--sizes", default="4,8,16")
    ap.add_argument("--T", type=float, default=1.0)
    ap.add_argument("--noise", type=float, default=0.1)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    out = []
    for n in map(int, args.sizes.split(",")):
        arms = [("pivot", None), ("circular", None), ("swiss", max(1, int(np.ceil(np.log2(n))))),
                ("swiss", 2 * int(np.ceil(np.log2(n)))), ("round_robin", None)]
        acc = {a: {"tau": [], "bad": 0, "var": [], "cmp": []} for a in arms}
        for _ in range(args.groups):
            q = rng.normal(size=n)
            P = 1 / (1 + np.exp(-(q[:, None] - q[None, :]) / args.T)) + rng.normal(0, args.noise, (n, n))
            P = np.clip(np.triu(P, 1) + np.tril(1 - np.triu(P, 1).T, -1), 0, 1)
            full, _ = rewards("round_robin", n, P, rng)
            k = int(rng.integers(1, n))
            passed = np.ones(n, bool)
            passed[rng.permutation(n)[:k]] = False
            for arm in arms:
                w, used = rewards(arm[0], n, P, rng, arm[1])
                tau = kendalltau(w, full).statistic
                acc[arm]["tau"].append(0.0 if np.isnan(tau) else tau)
                r = mix_rewards(w, passed)
                acc[arm]["bad"] += int(np.any((r - r.mean())[~passed] >= 0))
                acc[arm]["var"].append(float(w.var()))
                acc[arm]["cmp"].append(used)
        for (name, rounds), a in acc.items():
            row = {"n": n, "strategy": name + (f"({rounds} rounds)" if rounds else ""),
                   "comparisons": float(np.mean(a["cmp"])), "kendall_tau": float(np.mean(a["tau"])),
                   "violator_nonneg_share": a["bad"] / args.groups, "within_group_var": float(np.mean(a["var"]))}
            out.append(row)
            print(json.dumps(row))


if __name__ == "__main__":
    main()
