"""Whole-group rewards for policy GRPO: writing quality from a judge, constraint passes, mixing.

This is the part of policy training that must see complete groups (docs/design.md, "Scale"):
the pairwise strategies compare members of one group with each other, and RLMR's λ is set from
the whole group's writing rewards. In TRL a group can straddle processes, so the trainer calls
:meth:`GroupRewards.compute` on *gathered* prompts and completions, identically on every process.
The work itself is sharded across processes with ``shard``/``gather`` (round-robin over the
batch's comparisons, scalar scores and constraint checks), so nothing is judged or verified
twice; every process then folds the same gathered answers into the same rewards.

Per batch (``n`` completions per prompt, ``G`` groups), in order:

1. writing rewards ``w``: a pairwise judge makes every comparison the strategy needs for every
   group in **one** ``compare_many`` call (each by its task's principle, when it has one),
   folded per group by :func:`~quillrl.rewards.pairwise_rewards`; a judge with ``score()`` (a scalar reward model)
   scores every completion in one call instead;
2. constraint passes ``c`` from :func:`~quillrl.constraints.verify` (all constraints must pass);
3. optional group-relative length and style-density penalties ``d`` (``mix.length_penalty``,
   ``mix.style_penalty``; :func:`~quillrl.rewards.style_penalties`) are subtracted from ``w``
   *before* the mix, so RLMR sizes λ on ``w − d`` and its guarantee holds unchanged;
4. ``r = mix_rewards(w − d, c)`` per group (:func:`~quillrl.rewards.mix_groups`), whose per-group
   :class:`~quillrl.rewards.RLMRStats` (λ, k, σ) are returned as computed, never re-derived.

``circular`` lists its ring in the group's rule-fixed order (:func:`~quillrl.rewards.ring_order`
of the completions, keyed by the prompt), so the ring does not depend on the order completions
arrive in. ``swiss`` is adaptive: its rounds are sequential ``compare_many`` calls, each holding
the round's pairs of every group of the batch (round r's pairs come from the Bradley–Terry fit
of rounds 0..r−1), so a batch of G groups costs ``rounds`` judge calls, not G·rounds; the reward
server, which scores through this class, does the same.

A pivot strategy draws each group's pivot once (:func:`group_pivot`) and passes that index both
to the list of comparisons and to the fold, so the two cannot disagree.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..constraints import Constraint, as_constraint, verify
from ..rewards import (
    STRATEGIES,
    RLMRStats,
    choose_pivot,
    comparisons_needed,
    fill_missing_writing,
    mix_groups,
    pairwise_rewards,
    preference_matrix,
    ring_order,
    style_penalties_groups,
    swiss_pairs,
    swiss_rounds,
)

# MixSection fields that shape the writing reward before the mix, not arguments of mix_rewards
PENALTY_KEYS = ("length_penalty", "style_penalty")

# How a group's writing rewards are made: a pairwise-to-scalar strategy
# (quillrl.rewards.STRATEGIES), or "scalar", a judge that scores each completion alone.
WRITING_STRATEGIES = (*STRATEGIES, "scalar")


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
    lambdas: list[float] = field(default_factory=list)  # RLMR λ per group that was penalised
    reasons: list[str] = field(default_factory=list)  # first failing constraint reason per sample
    stats: list[RLMRStats] = field(default_factory=list)  # the mix's own stats, one per group
    penalty: np.ndarray | None = None  # group-relative length/style penalty d subtracted from w (None: off)

    @property
    def judge_invalid_rate(self) -> float:
        return self.judge_invalid / self.judgments if self.judgments else 0.0


def group_seed(seed: int, step: int, group: int) -> int:
    """A stable per-(step, group) seed for the pivot choice, the same on every process."""
    return zlib.crc32(f"{seed}:{step}:{group}".encode()) & 0x7FFFFFFF


def group_pivot(seed: int, step: int, group: int, group_size: int) -> int:
    """The pivot of one group at one step: drawn once, the same on every process."""
    return choose_pivot(group_size, seed=group_seed(seed, step, group))


def shard_map(fn: Callable[[list], list], items: list, shard: tuple[int, int],
              gather: Callable[[list], list]) -> list:
    """``fn(items)`` computed in shards: process ``rank`` of ``world`` runs ``fn`` on items
    ``rank, rank + world, ...``; ``gather`` (accelerate's ``gather_object``) joins every
    process's answers, and each process returns the whole list, in order."""
    rank, world = shard
    mine = list(range(rank, len(items), world))  # round-robin: balanced across processes
    local = fn([items[m] for m in mine]) if mine else []
    out: list = [None] * len(items)
    for m, value in gather(list(zip(mine, local))):
        out[m] = value
    return out


def task_constraints(value: Any) -> list[Constraint]:
    """One sample's constraints, validated: from a JSON string (a training dataset column stores
    them so, since Arrow would merge the kwargs dicts of different rows into one struct padded
    with None), a list of ``{"id", "kwargs"}`` dicts, or a list of :class:`Constraint` (kept).
    A bad constraint raises :class:`~quillrl.errors.ConstraintError`.

    >>> [c.id for c in task_constraints('[{"id": "creative:no_dialogue"}]')], task_constraints("")
    (['creative:no_dialogue'], [])
    """
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = json.loads(value)
    return [as_constraint(c) for c in value]  # dicts seen before are not validated again


class GroupRewards:
    """Compute mixed rewards for whole groups. One instance per training run.

    ``judge``: any :class:`~quillrl.judges.base.Judge` (pairwise) or, with
    ``strategy="scalar"``, an object with ``score(prompts, texts) -> list[float]``.
    ``mix``: keyword arguments of :func:`~quillrl.rewards.mix_rewards` (method, margin, ...).
    """

    def __init__(self, judge: Any, strategy: str = "pivot", mix: dict | None = None, seed: int = 0,
                 loose: bool = False, free_text_verifier: Any = None, rounds: int | None = None):
        if strategy not in WRITING_STRATEGIES:
            from ..errors import ConfigError

            raise ConfigError(f"writing-reward strategy must be one of {list(WRITING_STRATEGIES)}, "
                              f"got {strategy!r}")
        if strategy == "scalar" and not hasattr(judge, "score"):
            from ..errors import ConfigError

            raise ConfigError(f"strategy 'scalar' needs a judge with score(), e.g. scalar:<path>; got {judge!r}")
        self.judge, self.strategy, self.seed, self.rounds = judge, strategy, seed, rounds
        mix = dict(mix or {})
        self.penalties = {k: float(mix.pop(k) or 0.0) for k in PENALTY_KEYS if k in mix}
        self.mix = {"method": "rlmr", **mix}
        self.loose, self.free_text_verifier = loose, free_text_verifier

    # -- writing rewards ---------------------------------------------------------------------
    def _comparisons(self, group_size: int, groups: int, step: int, references: Sequence[str | None],
                     prompts: Sequence[str] = (), completions: Sequence[str] = ()):
        """Every (group, i, j) the strategy needs; j == group_size means the task's reference."""
        out = []
        for g in range(groups):
            if self.strategy == "reference" and not references[g * group_size]:
                from ..errors import DataError

                raise DataError(f"strategy 'reference' needs a 'reference' text for every task; the task "
                                f"of group {g} has none (use strategy pivot or round_robin)")
            pivot = group_pivot(self.seed, step, g, group_size) if self.strategy == "pivot" else None
            order = (ring_order(completions[g * group_size:(g + 1) * group_size], key=prompts[g * group_size])
                     if self.strategy == "circular" else None)
            pairs = comparisons_needed(self.strategy, group_size, pivot=pivot, order=order)
            out.extend((g, i, j) for i, j in pairs)
        return out

    def writing_rewards(self, prompts: Sequence[str], completions: Sequence[str], group_size: int,
                        step: int, references: Sequence[str | None],
                        shard: tuple[int, int] = (0, 1),
                        gather: Callable[[list], list] = lambda x: x,
                        principles: Sequence[str | None] | None = None,
                        ) -> tuple[np.ndarray, np.ndarray, int, int]:
        """``(w, missing, judgments, invalid)`` for a flat, group-major batch; ``principles``
        (one per sample, read at each group's first) condition the judge."""
        n_total = len(completions)
        groups = n_total // group_size
        if self.strategy == "scalar":
            score = lambda batch: list(self.judge.score([p for p, _ in batch], [t for _, t in batch]))  # noqa: E731
            scores = np.asarray([np.nan if v is None else v for v in
                                 shard_map(score, list(zip(prompts, completions)), shard, gather)],
                                dtype=np.float64)
            missing = ~np.isfinite(scores)
            return np.where(missing, 0.0, scores), missing, n_total, int(missing.sum())
        if self.strategy == "swiss":
            comps, probs = self._swiss(prompts, completions, group_size, groups, shard, gather, principles)
        else:
            comps = self._comparisons(group_size, groups, step, references, prompts, completions)
            probs = self._judge(comps, prompts, completions, group_size, references, shard, gather, principles)
        items = comps
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
                pivot = group_pivot(self.seed, step, g, group_size) if self.strategy == "pivot" else None
                r, miss = pairwise_rewards(p, self.strategy, pivot=pivot, return_missing=True)
            w[g * group_size:(g + 1) * group_size] = r
            missing[g * group_size:(g + 1) * group_size] = miss
        invalid = sum(p is None for p in probs)
        return w, missing, len(items), invalid

    def _judge(self, comps, prompts, completions, group_size, references, shard, gather,
               principles=None) -> list[float | None]:
        """``p(i ≻ j)`` for every (group, i, j), in one sharded ``compare_many`` call; each pair
        carries its group's principle (read at the group's first sample)."""
        items = []
        for g, i, j in comps:
            k = g * group_size
            other = references[k] if j == group_size else completions[k + j]
            items.append((prompts[k], completions[k + i], other, principles[k] if principles else None))
        return shard_map(lambda batch: [j.p_a for j in self.judge.compare_many(batch)], items, shard, gather)

    def _swiss(self, prompts, completions, group_size, groups, shard, gather, principles=None):
        """Swiss rounds for every group: one judge call per round, holding all groups' pairs."""
        rounds = self.rounds or swiss_rounds(group_size)
        orders = [ring_order(completions[g * group_size:(g + 1) * group_size], key=prompts[g * group_size])
                  for g in range(groups)]
        comps: list[tuple[int, int, int]] = []
        probs: list[float | None] = []
        for r in range(rounds):
            new = []
            for g in range(groups):
                done = [t for t, c in enumerate(comps) if c[0] == g]
                p = preference_matrix(group_size, [comps[t][1:] for t in done], [probs[t] for t in done])
                new.extend((g, i, j) for i, j in swiss_pairs(group_size, p, r, orders[g]))
            if not new:
                break
            probs.extend(self._judge(new, prompts, completions, group_size, [None] * len(completions),
                                     shard, gather, principles))
            comps.extend(new)
        return comps, probs

    # -- constraints -------------------------------------------------------------------------
    def passes(self, prompts: Sequence[str], completions: Sequence[str],
               constraints: Sequence[Sequence[Constraint]], shard: tuple[int, int] = (0, 1),
               gather: Callable[[list], list] = lambda x: x) -> tuple[np.ndarray, int, list[str]]:
        """``(passed, undecided checks, first failing reason per sample)``, checked in shards.

        An undecided check (``None``: e.g. a free_text verifier that gave no answer) does not
        pass, and is counted (docs/design.md, "Undecided constraints")."""

        def check(batch: list) -> list[tuple[bool, int, str]]:
            out = []
            for prompt, text, spec in batch:
                result = verify(text, spec, loose=self.loose, prompt=prompt,
                                free_text_verifier=self.free_text_verifier)
                failing = next((f"{r.id}: {r.reason}" for r in result.results if not r.passed), "")
                out.append((bool(result.passed), sum(r.passed is None for r in result.results),
                            failing))
            return out

        rows = shard_map(check, list(zip(prompts, completions, constraints)), shard, gather)
        return (np.asarray([r[0] for r in rows], dtype=bool), sum(r[1] for r in rows),
                [r[2] for r in rows])

    # -- everything --------------------------------------------------------------------------
    def compute(self, prompts: Sequence[str], completions: Sequence[str], constraints: Sequence[Any],
                group_size: int, step: int = 0, references: Sequence[str | None] | None = None,
                shard: tuple[int, int] = (0, 1),
                gather: Callable[[list], list] = lambda x: x,
                principles: Sequence[str | None] | None = None) -> GroupRewardBatch:
        """Rewards for a flat, group-major batch. ``constraints``: one list of
        :class:`Constraint` per sample; a sample's constraints given in a training dataset's
        form (a JSON string or dicts) are validated here, once, before anything is judged.
        ``principles``: one per sample (its task's rendered principle, or None), handed to the
        judge with every comparison of the sample's group."""
        if len(completions) % group_size:
            from ..errors import ConfigError

            raise ConfigError(f"{len(completions)} completions do not form whole groups of {group_size}")
        constraints = [task_constraints(c) for c in constraints]
        references = references or [None] * len(completions)
        w, missing, judged, invalid = self.writing_rewards(prompts, completions, group_size, step,
                                                           references, shard, gather, principles)
        c, unknown, reasons = self.passes(prompts, completions, constraints, shard, gather)
        w = fill_missing_writing(w, missing, group_size)  # docs/design.md, "Group barrier"
        d = (style_penalties_groups(list(completions), group_size, **self.penalties)
             if any(self.penalties.values()) else None)
        r, stats = mix_groups(w if d is None else w - d, c, group_size, return_stats=True, **self.mix)
        return GroupRewardBatch(rewards=r, writing=w, passed=c, writing_missing=missing,
                                judgments=judged, judge_invalid=invalid, constraint_unknown=unknown,
                                lambdas=[s.lam for s in stats if s.penalised], reasons=reasons,
                                stats=stats, penalty=d)
