"""The TTCW length-only head-to-head of issue 21: LC and SC win rates of a judge that knows only length.

    PYTHONPATH=src .venv/bin/python bench/ttcw_lc.py [--data ../shared/data]

TTCW's 48 stories (12 plots × New Yorker, Claude, GPT-3.5, GPT-4; the New Yorker "stories" are
their URLs, as the dataset ships them) are grouped by plot and sorted by ``story_id``; every pair
within a plot is one head-to-head pair with the earlier id as A (12 × 6 = 72 pairs). The judge is
``baseline:length`` (the longer story wins, equal length ties), so the right LC and SC win rate
is 0.5. Prints the raw, LC and SC win rates (LC with the fit as released, for the before/after).
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from quillrl.eval.winrate import controlled_win_rate, length_covariate, sc_win_rate
from quillrl.rewards import style_counts


def old_lc(s: np.ndarray, delta: np.ndarray) -> float:
    """The LC fit before issue 21: one L2 penalty 0.01 on θ and φ, L-BFGS-B."""
    from scipy.optimize import minimize

    x = length_covariate(delta)[:, 0]  # the released fit had the tanh term only

    def loss(w):
        z = w[0] + w[1] * x
        r = 1.0 / (1.0 + np.exp(-z)) - s
        return float(np.sum(np.logaddexp(0.0, z) - s * z)) + 0.01 * float(w @ w) / 2, \
            np.array([r.sum(), (r * x).sum()]) + 0.01 * w

    theta = minimize(loss, np.zeros(2), jac=True, method="L-BFGS-B").x[0]
    return float(1.0 / (1.0 + np.exp(-theta)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="../shared/data")
    args = parser.parse_args()
    path = Path(args.data) / "preferences/creativity_eval/ttcw/stories/ttcw_short_stories.json"
    plots = defaultdict(list)
    for story in json.loads(path.read_text()):
        plots[story["story_idx"]].append(story)
    s, delta, ca, cb = [], [], [], []
    for stories in plots.values():
        for a, b in itertools.combinations(sorted(stories, key=lambda x: x["story_id"]), 2):
            sa, sb = style_counts(a["content"]), style_counts(b["content"])
            s.append(1.0 if sa.words > sb.words else 0.5 if sa.words == sb.words else 0.0)
            delta.append(sa.words - sb.words)
            ca.append(sa)
            cb.append(sb)
    s, delta = np.array(s), np.array(delta, dtype=float)
    lc = controlled_win_rate(s, length_covariate(delta))
    sc = sc_win_rate(s, ca, cb)
    print(json.dumps({"pairs": int(s.size), "raw": float(s.mean()), "lc_before": old_lc(s, delta),
                      "lc_after": lc["win_rate"], "lc_ci": [lc["ci_low"], lc["ci_high"]],
                      "sc": sc["win_rate"], "sc_ci": [sc["ci_low"], sc["ci_high"]]}))


if __name__ == "__main__":
    main()
