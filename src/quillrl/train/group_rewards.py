"""Whole-group rewards for policy GRPO: writing quality from a judge, constraint passes, mixing.

This is the part of policy training that must see complete groups (DESIGN.md, "Scale"): the
pairwise strategies compare members of one group with each other, and RLMR's λ is set from
the whole group's writing rewards. In TRL a group can straddle processes, so the trainer calls
:meth:`GroupRewards.compute` on *gathered* prompts and completions, identically on every process;
judging can be sharded across processes with ``shard``/``gather`` so no comparison is made twice.

Per batch (``n`` completions per prompt, ``G`` groups), in order:

1. writing rewards ``w``: a pairwise judge makes every comparison the strategy needs for every
   group in **one** ``compare_many`` call, folded per group by
   :func:`~quillrl.rewards.pairwise_rewards`; a judge with ``score()`` (a scalar reward model)
   scores every completion in one call instead;
2. constraint passes ``c`` from :func:`~quillrl.constraints.verify` (all constraints must pass);
3. ``r = mix_rewards(w, c)`` per group (:func:`~quillrl.rewards.mix_groups`).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..rewards import comparisons_needed, fill_missing_writing, mix_groups, pairwise_rewards, preference_matrix, rlmr_lambda

STRATEGIES = ("pivot", "reference", "round_robin", "scalar")


@dataclass
class GroupRewardBatch:
    """Everything computed for one gathered batch; arrays are flat, group-major."""

    rewards: np.ndarray  # the mixed reward the trainer optimises
    writing: np.ndarray  # writing-quality reward w (missing ones: the group mean of the valid ones)
    passed: np.ndarray  # bool: every constraint of the task passed
    writing_missing: np.ndarray  # bool: w_i had no valid judgment behind it (filled, see above)
    judgments: int = 0
    judge_invalid: int = 0
    constraint_unknown: int = 0  # checks that returned None (e.g. free_text with no verifier)
    lambdas: list[float] = field(default_factory=list)  # RLMR λ per group that had violators
    reasons: list[str] = field(default_factory=list)  # first failing constraint reason per sample

    @property
    def judge_invalid_rate(self) -> float:
        return self.judge_invalid / self.judgments if self.judgments else 0.0


def group_seed(seed: int, step: int, group: int) -> int:
    """A stable per-(step, group) seed for the pivot choice, the same on every process."""
    return zlib.crc32(f"{seed}:{step}:{group}".encode()) & 0x7FFFFFFF


def task_constraints(value: Any) -> list[dict]:
    """Constraints as stored in a training dataset column: a JSON string (Arrow would merge the
    kwargs dicts of different rows into one struct padded with None) or a list of dicts."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return json.loads(value)
    return list(value)


class GroupRewards:
    """Compute mixed rewards for whole groups. One instance per training run.

    ``judge``: any :class:`~quillrl.judges.base.Judge` (pairwise) or, with
    ``strategy="scalar"``, an object with ``score(prompts, texts) -> list[float]``.
    ``mix``: keyword arguments of :func:`~quillrl.rewards.mix_rewards` (method, margin, ...).
    """

    def __init__(self, judge: Any, strategy: str = "pivot", mix: dict | None = None, seed: int = 0,
                 loose: bool = False, free_text_verifier: Any = None):
        if strategy not in STRATEGIES:
            from ..errors import ConfigError

            raise ConfigError(f"writing-reward strategy must be one of {list(STRATEGIES)}, got {strategy!r}")
        if strategy == "scalar" and not hasattr(judge, "score"):
            from ..errors import ConfigError

            raise ConfigError(f"strategy 'scalar' needs a judge with score(), e.g. scalar:<path>; got {judge!r}")
        self.judge, self.strategy, self.seed = judge, strategy, seed
        self.mix = {"method": "rlmr", **(mix or {})}
        self.loose, self.free_text_verifier = loose, free_text_verifier

    # -- writing rewards ---------------------------------------------------------------------
    def _comparisons(self, group_size: int, groups: int, step: int, references: Sequence[str | None]):
        """Every (group, i, j) the strategy needs; j == group_size means the task's reference."""
        out = []
        for g in range(groups):
            if self.strategy == "reference" and not references[g * group_size]:
                from ..errors import DataError

                raise DataError(f"strategy 'reference' needs a 'reference' text for every task; the task "
                                f"of group {g} has none (use strategy pivot or round_robin)")
            pairs = comparisons_needed(self.strategy, group_size, seed=group_seed(self.seed, step, g))
            out.extend((g, i, j) for i, j in pairs)
        return out

    def writing_rewards(self, prompts: Sequence[str], completions: Sequence[str], group_size: int,
                        step: int, references: Sequence[str | None],
                        shard: tuple[int, int] = (0, 1),
                        gather: Callable[[list], list] = lambda x: x) -> tuple[np.ndarray, np.ndarray, int, int]:
        """``(w, missing, judgments, invalid)`` for a flat, group-major batch."""
        n_total = len(completions)
        groups = n_total // group_size
        if self.strategy == "scalar":
            scores = np.asarray(self.judge.score(list(prompts), list(completions)), dtype=np.float64)
            missing = ~np.isfinite(scores)
            return np.where(missing, 0.0, scores), missing, n_total, int(missing.sum())
        comps = self._comparisons(group_size, groups, step, references)
        items = []
        for g, i, j in comps:
            k = g * group_size
            other = references[k] if j == group_size else completions[k + j]
            items.append((prompts[k], completions[k + i], other))
        rank, world = shard
        mine = list(range(rank, len(items), world))  # round-robin shard: balanced across processes
        local = self.judge.compare_many([items[m] for m in mine]) if mine else []
        gathered = gather([(m, j.p_a) for m, j in zip(mine, local)])
        probs: list[float | None] = [None] * len(items)
        for m, p in gathered:
            probs[m] = p
        w = np.zeros(n_total)
        missing = np.zeros(n_total, dtype=bool)
        for g in range(groups):
            idx = [t for t, c in enumerate(comps) if c[0] == g]
            pairs = [(comps[t][1], comps[t][2]) for t in idx]
            qs = [probs[t] for t in idx]
            if self.strategy == "reference":
                vec = np.array([np.nan if q is None else q for q in qs])
                r, miss = pairwise_rewards(vec, "reference", return_missing=True)
            else:
                p = preference_matrix(group_size, pairs, qs)
                r, miss = pairwise_rewards(p, self.strategy, seed=group_seed(self.seed, step, g),
                                           return_missing=True)
            w[g * group_size:(g + 1) * group_size] = r
            missing[g * group_size:(g + 1) * group_size] = miss
        invalid = sum(p is None for p in probs)
        return w, missing, len(items), invalid

    # -- constraints -------------------------------------------------------------------------
    def passes(self, prompts: Sequence[str], completions: Sequence[str],
               constraints: Sequence[Any]) -> tuple[np.ndarray, int, list[str]]:
        from ..constraints import verify

        passed, unknown, reasons = [], 0, []
        for prompt, text, spec in zip(prompts, completions, constraints):
            result = verify(text, task_constraints(spec), loose=self.loose, prompt=prompt,
                            free_text_verifier=self.free_text_verifier)
            passed.append(bool(result.passed))
            unknown += sum(r.passed is None for r in result.results)
            failing = next((f"{r.id}: {r.reason}" for r in result.results if not r.passed), "")
            reasons.append(failing)
        return np.asarray(passed, dtype=bool), unknown, reasons

    # -- everything --------------------------------------------------------------------------
    def compute(self, prompts: Sequence[str], completions: Sequence[str], constraints: Sequence[Any],
                group_size: int, step: int = 0, references: Sequence[str | None] | None = None,
                shard: tuple[int, int] = (0, 1),
                gather: Callable[[list], list] = lambda x: x) -> GroupRewardBatch:
        if len(completions) % group_size:
            from ..errors import ConfigError

            raise ConfigError(f"{len(completions)} completions do not form whole groups of {group_size}")
        references = references or [None] * len(completions)
        w, missing, judged, invalid = self.writing_rewards(prompts, completions, group_size, step,
                                                           references, shard, gather)
        c, unknown, reasons = self.passes(prompts, completions, constraints)
        w = fill_missing_writing(w, missing, group_size)  # docs/design.md, "Group barrier"
        r = mix_groups(w, c, group_size, **self.mix)
        lambdas = []
        if self.mix["method"] == "rlmr":
            for g in range(len(w) // group_size):
                sl = slice(g * group_size, (g + 1) * group_size)
                if 0 < (~c[sl]).sum() < group_size:
                    lambdas.append(float(rlmr_lambda(w[sl], c[sl], self.mix.get("margin", 0.5)).lam))
        return GroupRewardBatch(rewards=r, writing=w, passed=c, writing_missing=missing,
                                judgments=judged, judge_invalid=invalid, constraint_unknown=unknown,
                                lambdas=lambdas, reasons=reasons)
