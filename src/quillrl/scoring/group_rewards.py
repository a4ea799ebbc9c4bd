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

Each group is first put in its rule-fixed order (:func:`~quillrl.rewards.fixed_order`, a
function of the group's id and texts): the comparisons are listed in positions of that order
(the pivot is position 0; ``circular``'s ring is positions 0..n−1; ``swiss``'s first round
pairs neighbours there), folded and mixed there, and the rewards are put back in the order
given. So a group's rewards do not depend on the order of its members — the reward server,
which sees members in the order their rollouts finished, gets what the trainer gets.

The steps are public so that ``serve-reward`` can run them as a group arrives (docs/design.md,
"Judging while the group arrives"): :meth:`GroupRewards.plan` lists a group's comparisons,
:meth:`GroupRewards.check` checks one sample, and :meth:`GroupRewards.compute` takes what was
judged and checked already and does the rest, through the same fold and mix. ``swiss`` is
adaptive (round r's pairs come from the Bradley–Terry fit of rounds 0..r−1), so it is judged at
the barrier: one ``compare_many`` call per round, holding that round's pairs of every group.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..constraints import Constraint, as_constraint, verify
from ..rewards import (
    ADAPTIVE,
    STRATEGIES,
    RLMRStats,
    comparisons_needed,
    fill_missing_writing,
    fixed_order,
    mix_groups,
    pairwise_rewards,
    preference_matrix,
    style_penalties_groups,
    swiss_pairs,
    swiss_rounds,
)
from .config import WRITING_STRATEGIES  # defined beside the config field it types

# MixSection fields that shape the writing reward before the mix, not arguments of mix_rewards
PENALTY_KEYS = ("length_penalty", "style_penalty")



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


# A comparison by the indices of its two samples in the batch given: p(sample i ≻ sample j);
# j == REFERENCE stands for the task's reference text.
Judged = tuple[int, int]
REFERENCE = -1


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

    @property
    def lists_comparisons(self) -> bool:
        """Whether the strategy lists its comparisons up front from (n, the rule-fixed order),
        so that ``serve-reward`` can judge them as a group arrives; a scalar judge (and an
        adaptive design, whose next pairs follow the last round's verdicts) is judged at the barrier."""
        return self.strategy in STRATEGIES and self.strategy not in ADAPTIVE

    # -- the plan: order, then comparisons -------------------------------------------------------
    def order(self, completions: Sequence[str], group_size: int, group_ids: Sequence[str]) -> list[int]:
        """The flat permutation that puts every group in its rule-fixed order
        (:func:`~quillrl.rewards.fixed_order`, salted with ``"<seed>:<group id>"``):
        position ``t`` of the ordered batch holds sample ``order[t]``."""
        out: list[int] = []
        for g, gid in enumerate(group_ids):
            k = g * group_size
            out.extend(k + i for i in fixed_order(f"{self.seed}:{gid}", completions[k:k + group_size]))
        return out

    def comparisons(self, group_size: int, groups: int,
                    references: Sequence[str | None]) -> list[tuple[int, int, int]]:
        """Every ``(group, a, b)`` the strategy needs, in positions of the rule-fixed order
        (``references`` in that order too); ``b == group_size`` is the task's reference. The
        pivot is position 0, so it is a function of the group alone (:mod:`quillrl.rewards.order`)."""
        out = []
        for g in range(groups):
            if self.strategy == "reference" and not references[g * group_size]:
                from ..errors import DataError

                raise DataError(f"strategy 'reference' needs a 'reference' text for every task; the task "
                                f"of group {g} has none (use strategy pivot or round_robin)")
            pivot = 0 if self.strategy == "pivot" else None
            out.extend((g, a, b) for a, b in comparisons_needed(self.strategy, group_size, pivot=pivot))
        return out

    def plan(self, completions: Sequence[str], group_size: int, group_ids: Sequence[str],
             references: Sequence[str | None]) -> tuple[list[int], list[tuple[int, int, int]], list[Judged]]:
        """``(order, comparisons, keys)``: the ordering permutation, the comparisons in positions,
        and each comparison's key in the caller's indices, ``(i, j)`` = ``p(sample i ≻ sample j)``
        (``j`` = :data:`REFERENCE` for the task's reference). ``serve-reward`` calls this on the
        members present to know what to judge as a group arrives; :meth:`compute` calls it too."""
        order = self.order(completions, group_size, group_ids)
        comps = self.comparisons(group_size, len(group_ids), [references[t] for t in order])
        keys = [(order[g * group_size + a], REFERENCE if b == group_size else order[g * group_size + b])
                for g, a, b in comps]
        return order, comps, keys

    # -- writing rewards ---------------------------------------------------------------------
    def judge_items(self, keys: Sequence[Judged], prompts: Sequence[str], completions: Sequence[str],
                    references: Sequence[str | None],
                    principles: Sequence[str | None] | None = None) -> list[tuple[str, str, str, str | None]]:
        """The ``(prompt, a, b, principle)`` the judge sees for each comparison key; a sample's
        principle is its task's, so both members of a comparison share it."""
        return [(prompts[i], completions[i], references[i] if j == REFERENCE else completions[j],
                 principles[i] if principles else None) for i, j in keys]

    def fold(self, comps: Sequence[tuple[int, int, int]], probs: Sequence[float | None],
             group_size: int, groups: int) -> tuple[np.ndarray, np.ndarray]:
        """``(w, missing)`` in positions of the rule-fixed order, from each comparison's
        probability (``None``: no valid judgment): :func:`~quillrl.rewards.preference_matrix`
        and :func:`~quillrl.rewards.pairwise_rewards` per group, pivot at position 0."""
        w = np.zeros(groups * group_size)
        missing = np.zeros(groups * group_size, dtype=bool)
        for g in range(groups):
            idx = [t for t, c in enumerate(comps) if c[0] == g]
            pairs = [(comps[t][1], comps[t][2]) for t in idx]
            qs = [probs[t] for t in idx]
            if self.strategy == "reference":
                vec = np.array([np.nan if q is None else q for q in qs])
                r, miss = pairwise_rewards(vec, "reference", return_missing=True)
            else:
                p = preference_matrix(group_size, pairs, qs)
                pivot = 0 if self.strategy == "pivot" else None
                r, miss = pairwise_rewards(p, self.strategy, pivot=pivot, return_missing=True)
            w[g * group_size:(g + 1) * group_size] = r
            missing[g * group_size:(g + 1) * group_size] = miss
        return w, missing

    def writing_rewards(self, prompts: Sequence[str], completions: Sequence[str], group_size: int,
                        group_ids: Sequence[str], references: Sequence[str | None],
                        shard: tuple[int, int] = (0, 1), gather: Callable[[list], list] = lambda x: x,
                        judged: Mapping[Judged, float | None] | None = None,
                        principles: Sequence[str | None] | None = None,
                        ) -> tuple[list[int], np.ndarray, np.ndarray, int, int]:
        """``(order, w, missing, judgments, invalid)`` for a flat, group-major batch; ``w`` and
        ``missing`` in positions of the rule-fixed order. ``judged``: comparisons already judged
        (by key, as :meth:`plan` names them); only the others are sent to the judge.
        ``principles``: one per sample (its task's), handed to the judge with each comparison."""
        n_total = len(completions)
        groups = n_total // group_size
        if self.strategy == "scalar":
            order = self.order(completions, group_size, group_ids)
            score = lambda batch: list(self.judge.score([p for p, _ in batch], [t for _, t in batch]))  # noqa: E731
            scores = np.asarray([np.nan if v is None else v for v in
                                 shard_map(score, [(prompts[t], completions[t]) for t in order], shard, gather)],
                                dtype=np.float64)
            missing = ~np.isfinite(scores)
            return order, np.where(missing, 0.0, scores), missing, n_total, int(missing.sum())
        if self.strategy in ADAPTIVE:
            order = self.order(completions, group_size, group_ids)
            comps, probs = self._swiss(order, prompts, completions, group_size, groups, shard, gather,
                                       principles)
            w, missing = self.fold(comps, probs, group_size, groups)
            return order, w, missing, len(comps), sum(q is None for q in probs)
        order, comps, keys = self.plan(completions, group_size, group_ids, references)
        judged = judged or {}
        todo = [t for t, key in enumerate(keys) if key not in judged]
        items = self.judge_items([keys[t] for t in todo], prompts, completions, references, principles)
        fresh: list[float | None] = shard_map(
            lambda batch: [j.p_a for j in self.judge.compare_many(batch)], items, shard, gather)
        probs = [judged.get(key) for key in keys]
        for t, q in zip(todo, fresh):
            probs[t] = q
        w, missing = self.fold(comps, probs, group_size, groups)
        return order, w, missing, len(keys), sum(q is None for q in probs)

    def _swiss(self, order, prompts, completions, group_size, groups, shard, gather, principles=None):
        """Swiss rounds for every group, in positions of the rule-fixed order (round 0 pairs
        neighbours there): one judge call per round, holding every group's pairs of that round."""
        rounds = self.rounds or swiss_rounds(group_size)
        comps: list[tuple[int, int, int]] = []
        probs: list[float | None] = []
        for r in range(rounds):
            new = []
            for g in range(groups):
                done = [t for t, c in enumerate(comps) if c[0] == g]
                p = preference_matrix(group_size, [comps[t][1:] for t in done], [probs[t] for t in done])
                new.extend((g, a, b) for a, b in swiss_pairs(group_size, p, r))
            if not new:
                break
            keys = [(order[g * group_size + a], order[g * group_size + b]) for g, a, b in new]
            items = self.judge_items(keys, prompts, completions, [None] * len(completions), principles)
            probs.extend(shard_map(lambda batch: [j.p_a for j in self.judge.compare_many(batch)],
                                   items, shard, gather))
            comps.extend(new)
        return comps, probs

    # -- constraints -------------------------------------------------------------------------
    def passes(self, prompts: Sequence[str], completions: Sequence[str],
               constraints: Sequence[Sequence[Constraint]], shard: tuple[int, int] = (0, 1),
               gather: Callable[[list], list] = lambda x: x) -> tuple[np.ndarray, int, list[str]]:
        """``(passed, undecided checks, first failing reason per sample)``, checked in shards.

        An undecided check (``None``: e.g. a free_text verifier that gave no answer) does not
        pass, and is counted (docs/design.md, "Undecided constraints")."""

        rows = shard_map(lambda batch: [self.check(*item) for item in batch],
                         list(zip(prompts, completions, constraints)), shard, gather)
        return (np.asarray([r[0] for r in rows], dtype=bool), sum(r[1] for r in rows),
                [r[2] for r in rows])

    def check(self, prompt: str, text: str, constraints: Any) -> tuple[bool, int, str]:
        """One sample's ``(passed, undecided checks, first failing reason)``; ``serve-reward``
        runs it as each member arrives."""
        result = verify(text, task_constraints(constraints), loose=self.loose, prompt=prompt,
                        free_text_verifier=self.free_text_verifier)
        failing = next((f"{r.id}: {r.reason}" for r in result.results if not r.passed), "")
        return result.passed, result.undecided, failing  # count_verdicts' rule

    # -- everything --------------------------------------------------------------------------
    def compute(self, prompts: Sequence[str], completions: Sequence[str], constraints: Sequence[Any],
                group_size: int, step: int = 0, references: Sequence[str | None] | None = None,
                shard: tuple[int, int] = (0, 1), gather: Callable[[list], list] = lambda x: x,
                group_ids: Sequence[str] | None = None,
                judged: Mapping[Judged, float | None] | None = None,
                checked: Sequence[tuple[bool, int, str]] | None = None,
                principles: Sequence[str | None] | None = None) -> GroupRewardBatch:
        """Rewards for a flat, group-major batch, returned in the order given. ``constraints``:
        one list of :class:`Constraint` per sample; a sample's constraints given in a training
        dataset's form (a JSON string or dicts) are validated here, once, before anything is judged.

        ``group_ids`` name the groups for their rule-fixed order (default ``"<step>:<g>"``);
        every group is ordered by it, judged, folded and mixed in that order, then put back in
        the order given, so the rewards do not depend on the order of a group's members.
        ``serve-reward`` passes what it judged and checked as members arrived: ``judged`` (by
        :meth:`plan`'s keys) and ``checked`` (one :meth:`check` row per sample); what is not
        there is judged and checked here. ``principles``: one per sample (its task's rendered
        principle, or None), handed to the judge with every comparison of the sample's group."""
        if len(completions) % group_size:
            from ..errors import ConfigError

            raise ConfigError(f"{len(completions)} completions do not form whole groups of {group_size}")
        constraints = [task_constraints(c) for c in constraints]
        references = references or [None] * len(completions)
        groups = len(completions) // group_size
        group_ids = list(group_ids) if group_ids is not None else [f"{step}:{g}" for g in range(groups)]
        order, w, missing, judged_n, invalid = self.writing_rewards(
            prompts, completions, group_size, group_ids, references, shard, gather, judged, principles)
        if checked is None:
            c, unknown, reasons = self.passes(prompts, completions, constraints, shard, gather)
        else:
            c = np.asarray([r[0] for r in checked], dtype=bool)
            unknown, reasons = sum(r[1] for r in checked), [r[2] for r in checked]
        c, reasons = c[order], [reasons[t] for t in order]  # into the rule-fixed order
        w = fill_missing_writing(w, missing, group_size)  # docs/design.md, "Group barrier"
        d = (style_penalties_groups([completions[t] for t in order], group_size, **self.penalties)
             if any(self.penalties.values()) else None)  # before the mix: RLMR sizes λ on w − d
        r, stats = mix_groups(w if d is None else w - d, c, group_size, return_stats=True, **self.mix)
        back = np.argsort(order)  # from positions back to the order given
        return GroupRewardBatch(rewards=r[back], writing=w[back], passed=c[back], writing_missing=missing[back],
                                judgments=judged_n, judge_invalid=invalid, constraint_unknown=unknown,
                                lambdas=[s.lam for s in stats if s.penalised],
                                reasons=[reasons[t] for t in back], stats=stats,
                                penalty=None if d is None else d[back])
