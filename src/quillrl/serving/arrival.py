"""Judging while the group arrives: a comparison starts as soon as both of its members are in.

Engines' rollouts finish one by one, so a group's members reach the server over seconds. Rather
than wait for the last one and then judge the whole group, the server works as they come
(docs/design.md, "Judging while the group arrives"):

* **On each arrival** it asks the trainer's :meth:`~quillrl.scoring.GroupRewards.plan` for the
  comparisons the strategy would need if the group were the members present, in their
  rule-fixed order, and queues on the batcher (:meth:`~.batcher.BatchingJudge.submit`) those
  not queued before; it also checks the new member's constraints in the scoring pool.
* **When the group closes** (complete, or timed out and partial), the plan of the members
  present is the group's own list of comparisons: those the last member is in were queued at its
  arrival, every other one earlier. The group is then scored by
  :meth:`~quillrl.scoring.GroupRewards.compute` — the trainer's code — given what was judged and
  checked, so the fold and the mix are the trainer's own, and the rewards are those of scoring
  the completed group at once.

A comparison queued for a plan that a later arrival changed is not used: with ``pivot``, the
pivot of the members present is the first in the rule-fixed order, and a member whose digest
sorts before it takes its place; with ``circular``, a member arriving fourth or later splits an
edge of the ring of those present, whose comparison is then unused (n − 3 or n − 2 in a group of
n). For ``round_robin`` and ``reference`` every comparison queued is one the group needs. Unused
comparisons are counted (``quillrl_comparisons_unused_total``).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from ..scoring.group_rewards import GroupRewards, Judged
from .barrier import Group


@dataclass
class ArrivalWork:
    """What was started for one group as its members arrived."""

    judged: dict[Judged, asyncio.Future] = field(default_factory=dict)  # key -> Judgment
    checks: dict[int, asyncio.Future] = field(default_factory=dict)  # member -> GroupRewards.check row


def order_salt(group: Group) -> str:
    """The group id that salts a group's rule-fixed order (``"id"``, or ``"id#attempt"`` for a
    re-rolled group); the same on arrival and at scoring. Not the answer's ``group_id``, which
    is the engine's id alone."""
    return str(group.key)


class ArrivalJudging:
    """Starts a group's comparisons and constraint checks as its members arrive."""

    def __init__(self, group_rewards: GroupRewards, pool: Executor):
        self.group_rewards, self.pool = group_rewards, pool
        self.pairwise = group_rewards.lists_comparisons  # else judged at the barrier, checked on arrival

    def arrived(self, group: Group) -> None:
        """The barrier's ``on_joined``: start on the group's newest member (on the event loop)."""
        loop = asyncio.get_running_loop()
        work = group.work = group.work or ArrivalWork()
        index, sample = len(group.members) - 1, group.members[-1].sample
        work.checks[index] = loop.run_in_executor(
            self.pool, self.group_rewards.check, sample.prompt, sample.response, sample.constraints)
        if self.pairwise:
            self._queue(group, work, self._needed(group))

    async def collect(self, group: Group) -> tuple[dict[Judged, float | None] | None,
                                                   list[tuple[bool, int, str]], int]:
        """``(judged, checked, unused)`` for a closing group: the probability of every
        comparison it needs (queued now if it was not yet), each member's check row, and how
        many comparisons were judged that it does not need."""
        work: ArrivalWork = group.work
        checked = list(await asyncio.gather(*(work.checks[i] for i in range(len(group.members)))))
        if not self.pairwise:
            return None, checked, 0
        needed = self._needed(group)
        self._queue(group, work, needed)
        judgments = await asyncio.gather(*(work.judged[key] for key, _ in needed))
        judged = {key: j.p_a for (key, _), j in zip(needed, judgments)}
        return judged, checked, len(work.judged) - len(judged)

    def _needed(self, group: Group) -> list[tuple[Judged, tuple[str, str, str]]]:
        """``(key, (prompt, a, b, principle))`` of every comparison the members present need."""
        samples = group.samples
        texts, refs = [s.response for s in samples], [s.reference for s in samples]
        _, _, keys = self.group_rewards.plan(texts, len(samples), [order_salt(group)], refs)
        items = self.group_rewards.judge_items(keys, [s.prompt for s in samples], texts, refs,
                                               [s.principle for s in samples])
        return list(zip(keys, items))

    def _queue(self, group: Group, work: ArrivalWork, needed: list[tuple[Judged, Any]]) -> None:
        new = [(key, item) for key, item in needed if key not in work.judged]
        if not new:
            return
        futures = self.group_rewards.judge.submit([item for _, item in new])
        for (key, _), future in zip(new, futures):
            work.judged[key] = asyncio.wrap_future(future)


__all__ = ["ArrivalJudging", "ArrivalWork", "order_salt"]
