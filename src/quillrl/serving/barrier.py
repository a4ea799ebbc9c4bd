"""The group barrier: hold single-sample reward requests until their GRPO group is whole.

verl, OpenRLHF and slime ask for one sample's reward at a time, but a pairwise judge compares
members of one group and RLMR sets λ from the whole group (docs/design.md, "Group barrier").
Each request names a group key and the group size n; the barrier keeps one *open* group per key.

A group's life, as explicit states (never a race between timers and arrivals, since everything
runs on one event loop):

``OPEN``
    members join; the first one starts the group's timer.
``COMPLETE``
    the n-th member arrived: the group leaves the open table at once (so the same key, seen again
    in a later step, starts a new group) and is scored.
``TIMED_OUT``
    the timer fired first: the group leaves the open table and is scored among the n' < n members
    present; every answer is flagged ``partial``.
``SCORED``
    every member's future holds its answer (or the scoring error).

A member whose request was cancelled (its client went away, e.g. an engine's client timing
out) still counts in its group: the others are not held hostage. Engines then re-send the same
sample; a request for a (key, sample) whose earlier request was abandoned takes over that
member's place (or, once the group is scored, gets its answer) instead of joining the group a
second time. Abandoned places are kept for twice the group timeout.
"""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable


class GroupState(enum.Enum):
    OPEN = "open"
    COMPLETE = "complete"
    TIMED_OUT = "timed_out"
    SCORED = "scored"


class GroupConflict(ValueError):
    """A request disagrees with the open group of its key (e.g. about the group size)."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


@dataclass
class Group:
    """One GRPO group as the barrier holds it; ``members`` are the samples, in arrival order."""

    key: str
    size: int
    serial: int  # how many groups the barrier had opened before this one (seeds the pivot)
    members: list[Any] = field(default_factory=list)
    futures: list[asyncio.Future] = field(default_factory=list)
    state: GroupState = GroupState.OPEN
    opened: float = field(default_factory=time.monotonic)
    timer: asyncio.TimerHandle | None = None
    outcome: Any = None  # once scored: the answers, or the exception scoring raised

    @property
    def partial(self) -> bool:
        return self.state is GroupState.TIMED_OUT or len(self.members) < self.size


# score(group) -> one answer per member, in order
Scorer = Callable[[Group], Awaitable[list[Any]]]


class GroupBarrier:
    """Open groups by key; ``await join(key, size, samples)`` returns the samples' answers.

    ``on_closed(group)`` is called when a group stops accepting members (complete or timed
    out), before it is scored; metrics read ``group.state`` there.
    """

    def __init__(self, score: Scorer, timeout_s: float,
                 on_closed: Callable[[Group], None] | None = None):
        self.score, self.timeout_s = score, timeout_s
        self.on_closed = on_closed or (lambda g: None)
        self.open: dict[str, Group] = {}
        self.opened = 0
        self.abandoned: dict[tuple[str, Any], tuple[Group, int, float]] = {}
        self._tasks: set[asyncio.Task] = set()

    async def join(self, key: str, size: int, samples: list[Any]) -> list[Any]:
        """Add ``samples`` to the open group of ``key`` and wait for their answers. Samples
        beyond the group's free places start the key's next group."""
        if not samples:
            raise GroupConflict(f"a request for group '{key}' carries no sample", "samples")
        futures = [self._add(key, size, sample) for sample in samples]
        return list(await asyncio.gather(*futures))

    def _add(self, key: str, size: int, sample: Any) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        self._forget_old(loop.time())
        place = self.abandoned.pop((key, sample), None)
        if place is not None:  # a re-sent sample: take over its abandoned place
            return self._resume(*place[:2], loop)
        group = self.open.get(key)
        if group is not None and group.size != size:
            raise GroupConflict(f"group '{key}' is open with size {group.size}; this request says "
                                f"{size}", "group_size")
        if group is None:
            group = Group(key, size, self.opened)
            self.opened += 1
            self.open[key] = group
            group.timer = loop.call_later(self.timeout_s, self._expire, group)
        future = loop.create_future()
        group.members.append(sample)
        group.futures.append(future)
        self._watch(group, len(group.members) - 1, future)
        if len(group.members) == group.size:
            self._close(group, GroupState.COMPLETE)
        return future

    def _watch(self, group: Group, index: int, future: asyncio.Future) -> None:
        def abandoned(f: asyncio.Future) -> None:
            if f.cancelled():
                loop = asyncio.get_running_loop()
                self.abandoned[(group.key, group.members[index])] = (group, index, loop.time())

        future.add_done_callback(abandoned)

    def _resume(self, group: Group, index: int, loop: asyncio.AbstractEventLoop) -> asyncio.Future:
        future = loop.create_future()
        if isinstance(group.outcome, Exception):
            future.set_exception(group.outcome)
        elif group.outcome is not None:
            future.set_result(group.outcome[index])
        else:
            group.futures[index] = future
            self._watch(group, index, future)
        return future

    def _forget_old(self, now: float) -> None:
        for place, (_, _, since) in list(self.abandoned.items()):
            if now - since > 2 * self.timeout_s:
                del self.abandoned[place]

    def _expire(self, group: Group) -> None:
        if group.state is GroupState.OPEN:
            self._close(group, GroupState.TIMED_OUT)

    def _close(self, group: Group, state: GroupState) -> None:
        group.state = state
        if group.timer is not None:
            group.timer.cancel()
        if self.open.get(group.key) is group:
            del self.open[group.key]  # the key's next request starts a new group
        self.on_closed(group)
        task = asyncio.get_running_loop().create_task(self._score(group))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _score(self, group: Group) -> None:
        try:
            answers = await self.score(group)
        except Exception as exc:  # noqa: BLE001 - every waiting member gets the error
            group.outcome = exc
            for future in group.futures:
                if not future.done():
                    future.set_exception(exc)
        else:
            group.outcome = answers
            for future, answer in zip(group.futures, answers):
                if not future.done():  # a cancelled member (its client left) is skipped
                    future.set_result(answer)
        group.state = GroupState.SCORED

    def close(self) -> None:
        """Score every open group now as timed out (server shutdown)."""
        for group in list(self.open.values()):
            self._close(group, GroupState.TIMED_OUT)
