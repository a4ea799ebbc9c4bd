"""The group barrier: hold single-sample reward requests until their GRPO group is whole.

verl, OpenRLHF, slime and NeMo Gym ask for one sample's reward at a time, but a pairwise judge
compares members of one group and RLMR sets λ from the whole group. This module is the group
identity contract of docs/design.md ("Group identity"), as explicit state on one event loop (never
a race between timers and arrivals):

* A group is a :class:`GroupKey`, ``(id, attempt)``, with ``size`` places. Each :class:`Member`
  carries a ``digest`` of its prompt and constraints; a member whose digest differs from its open
  group's is refused (:class:`GroupConflict`, reason ``digest``), never mixed in. A request's
  members are all checked before any joins, so a refused request leaves nothing behind.
* A member may name its ``slot`` (its rollout index). The same slot sent again with the same
  response is a **replay** (a client retry): it gets the answer that slot has, or waits with it,
  whether the slot is in the key's open group or its last closed one; the same slot with another
  response while the group is open is refused (reason ``slot``).
* A member without a slot whose request was abandoned (its client left, e.g. an engine's client
  timing out) still counts in its group, so the others are not held hostage; the same member
  sent again **takes over** that place (or, once scored, gets its answer) instead of joining
  twice. Abandoned places are kept for twice the group timeout.
* ``OPEN`` → ``COMPLETE`` when the last place fills (a group of one closes at once), or →
  ``TIMED_OUT`` when its timer fires first (scored among the members present, flagged
  ``partial``) → ``SCORED`` once every waiting member has its answer (or the scoring error).
  A closed group leaves the open table at once, so a key seen again starts a new group; closed
  groups are remembered while they are scored and for twice the timeout after, so that replays
  find their answers (however long the scoring took).

Every outcome of a join is reported to ``on_member`` (metrics): ``joined``, ``replayed``,
``taken_over``, ``refused_digest``, ``refused_slot``, ``refused_size``.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Hashable

MAX_REMEMBERED = 100_000  # closed groups kept for replays, at most (oldest forgotten first)


class GroupState(enum.Enum):
    OPEN = "open"
    COMPLETE = "complete"
    TIMED_OUT = "timed_out"
    SCORED = "scored"


class GroupConflict(ValueError):
    """A member disagrees with its open group: ``reason`` is ``digest``, ``slot`` or ``size``;
    ``field`` names the request field at fault. The server answers 409."""

    def __init__(self, message: str, field: str, reason: str = "size"):
        super().__init__(message)
        self.field, self.reason = field, reason


class GroupAbandoned(RuntimeError):
    """The server shut down before the group was scored (its scoring outlasted the limit)."""


@dataclass(frozen=True)
class GroupKey:
    """A group's identity: the engine's group id and the attempt (a re-rolled group is a new one)."""

    id: str
    attempt: int = 0

    def __str__(self) -> str:
        return self.id if self.attempt == 0 else f"{self.id}#{self.attempt}"


@dataclass(frozen=True)
class Member:
    """One sample as the barrier holds it.

    ``sample`` is what the scorer reads; ``digest`` names the group's prompt and constraints
    (``None``: not checked); ``response`` identifies the sample's text, for replays; ``slot`` is
    the engine's rollout index within the group, when it has one."""

    sample: Any
    digest: str | None = None
    response: Hashable = None
    slot: int | None = None

    @classmethod
    def of(cls, value: Any) -> "Member":
        """A bare value as a member (no digest, no slot; it identifies itself)."""
        return value if isinstance(value, Member) else cls(value, None, value, None)


@dataclass
class Group:
    """One GRPO group as the barrier holds it; ``members`` in arrival order."""

    key: GroupKey
    size: int
    digest: str | None = None
    members: list[Member] = field(default_factory=list)
    waiters: list[list[asyncio.Future]] = field(default_factory=list)  # per member: its requests
    slots: dict[int, int] = field(default_factory=dict)  # slot -> index in members
    state: GroupState = GroupState.OPEN
    opened: float = field(default_factory=time.monotonic)
    scored_at: float = 0.0  # loop time the answers (or the error) were set; forgotten from then on
    timer: asyncio.TimerHandle | None = None
    outcome: Any = None  # once scored: the answers, or the exception scoring raised
    work: Any = None  # the scorer's own state for the group (work started as members arrived)

    @property
    def partial(self) -> bool:
        return self.state is GroupState.TIMED_OUT or len(self.members) < self.size

    @property
    def samples(self) -> list[Any]:
        return [m.sample for m in self.members]


# score(group) -> one answer per member, in order
Scorer = Callable[[Group], Awaitable[list[Any]]]


class GroupBarrier:
    """Open groups by key; ``await join(key, size, members)`` returns the members' answers.

    ``on_closed(group)`` is called when a group stops accepting members (complete or timed
    out), before it is scored; ``on_member(outcome)`` once per member joined or refused;
    ``on_joined(group)`` each time a new member takes a place (it is ``group.members[-1]``),
    before the group closes, so that a scorer can start on it.
    """

    def __init__(self, score: Scorer, timeout_s: float,
                 on_closed: Callable[[Group], None] | None = None,
                 on_member: Callable[[str], None] | None = None,
                 on_joined: Callable[[Group], None] | None = None):
        self.score, self.timeout_s = score, timeout_s
        self.on_joined = on_joined or (lambda g: None)
        self.on_closed = on_closed or (lambda g: None)
        self.on_member = on_member or (lambda outcome: None)
        self.open: dict[GroupKey, Group] = {}
        self.closed: OrderedDict[GroupKey, Group] = OrderedDict()  # remembered for replays
        self.opened = 0
        self.abandoned: dict[tuple[GroupKey, Any], tuple[Group, int, float]] = {}
        self._tasks: set[asyncio.Task] = set()

    async def join(self, key: GroupKey | str, size: int, members: list[Any]) -> list[Any]:
        """Add ``members`` to the open group of ``key`` and wait for their answers. Members
        beyond the group's free places start the key's next group. Raises
        :class:`GroupConflict` (nothing joined) when a member is refused."""
        key = key if isinstance(key, GroupKey) else GroupKey(str(key))
        if not members:
            raise GroupConflict(f"a request for group '{key}' carries no sample", "samples", "size")
        members = [Member.of(m) for m in members]
        loop = asyncio.get_running_loop()
        self._forget_old(loop.time())
        self._check(key, size, members)  # every member, before any joins
        futures = [self._add(key, size, m, loop) for m in members]
        return list(await asyncio.gather(*futures))

    # -- joining ---------------------------------------------------------------------------------
    def _check(self, key: GroupKey, size: int, members: list[Member]) -> None:
        """Raise :class:`GroupConflict` (counted) if any of ``members`` would be refused: each is
        placed, in order, in a copy of the key's groups, so that it is checked against the open
        group and against the request's earlier members; the barrier is left as it was."""
        now = self.open.get(key)
        shadow = None if now is None else Group(key, now.size, now.digest, list(now.members),
                                                slots=dict(now.slots))
        closed, taken = self.closed.get(key), set()
        for member in members:
            place = (key, (member.digest, member.response))
            if member.slot is None and place in self.abandoned and place not in taken:
                taken.add(place)  # it takes over its abandoned place
                continue
            try:
                if self._replayed(key, size, member, shadow, closed) is not None:
                    continue
            except GroupConflict as exc:
                self.on_member(f"refused_{exc.reason}")
                raise
            shadow = shadow or Group(key, size, member.digest)
            shadow.members.append(member)
            if member.slot is not None:
                shadow.slots[member.slot] = len(shadow.members) - 1
            if len(shadow.members) == shadow.size:
                closed, shadow = shadow, None

    def _replayed(self, key: GroupKey, size: int, member: Member, group: Group | None,
                  closed: Group | None) -> tuple[Group, int] | None:
        """``(group, index)`` of the place ``member`` replays, or ``None`` when it joins
        ``group`` (the key's open group; ``None``: it starts one). Raises
        :class:`GroupConflict` when it may not."""
        if member.slot is not None:
            # a replay is looked for in both groups before the open one's slot refuses it: a
            # scored slot sent again while the key's next group holds that slot is a replay
            for held_in in (group, closed):
                index = held_in.slots.get(member.slot) if held_in is not None else None
                if index is not None and (held_in.members[index].response, held_in.members[index].digest) \
                        == (member.response, member.digest):
                    return held_in, index
            if group is not None and member.slot in group.slots:
                raise GroupConflict(f"slot {member.slot} of group '{key}' already holds another "
                                    "response", "slot", "slot")
        if group is not None and group.size != size:
            raise GroupConflict(f"group '{key}' is open with size {group.size}; this request "
                                f"says {size}", "group_size", "size")
        if group is not None and None not in (member.digest, group.digest) and member.digest != group.digest:
            raise GroupConflict(f"group '{key}' holds another prompt or other constraints "
                                "(digest differs): a group id must name one prompt", "prompt", "digest")
        if member.slot is not None and size <= member.slot:  # the first member's slot too
            raise GroupConflict(f"slot {member.slot} is out of range for group '{key}' of size "
                                f"{size}", "slot", "slot")
        return None

    def _add(self, key: GroupKey, size: int, member: Member, loop: asyncio.AbstractEventLoop) -> asyncio.Future:
        """Place a member :meth:`_check` let through."""
        if member.slot is None:
            place = self.abandoned.pop((key, (member.digest, member.response)), None)
            if place is not None:  # a re-sent sample: take over its abandoned place
                self.on_member("taken_over")
                return self._waiter(place[0], place[1], loop)
        group = self.open.get(key)
        replay = self._replayed(key, size, member, group, self.closed.get(key))
        if replay is not None:
            self.on_member("replayed")
            return self._waiter(*replay, loop)
        if group is None:
            group = Group(key, size, member.digest)
            self.opened += 1
            self.open[key] = group
            group.timer = loop.call_later(self.timeout_s, self._expire, group)
        group.members.append(member)
        group.waiters.append([])
        if member.slot is not None:
            group.slots[member.slot] = len(group.members) - 1
        future = self._waiter(group, len(group.members) - 1, loop)
        self.on_member("joined")
        self.on_joined(group)
        if len(group.members) == group.size:
            self._close(group, GroupState.COMPLETE)
        return future

    def _waiter(self, group: Group, index: int, loop: asyncio.AbstractEventLoop) -> asyncio.Future:
        """A future for member ``index`` of ``group``: resolved now if the group is scored."""
        future = loop.create_future()
        if isinstance(group.outcome, Exception):
            future.set_exception(group.outcome)
        elif group.outcome is not None:
            future.set_result(group.outcome[index])
        else:
            group.waiters[index].append(future)
            future.add_done_callback(lambda f: self._left(group, index, f))
        return future

    def _left(self, group: Group, index: int, future: asyncio.Future) -> None:
        """A member's request was cancelled (its client went away): remember its place."""
        if not future.cancelled() or any(not f.done() for f in group.waiters[index]):
            return
        member = group.members[index]
        if member.slot is None:  # a slotted member is found again by its slot
            key = (group.key, (member.digest, member.response))
            self.abandoned[key] = (group, index, asyncio.get_running_loop().time())

    def _forget_old(self, now: float) -> None:
        for place, (_, _, since) in list(self.abandoned.items()):
            if now - since > 2 * self.timeout_s:
                del self.abandoned[place]
        while self.closed:
            key, group = next(iter(self.closed.items()))
            if group.state is not GroupState.SCORED:  # still being scored: its replays wait on it
                break
            if len(self.closed) <= MAX_REMEMBERED and now - group.scored_at <= 2 * self.timeout_s:
                break
            del self.closed[key]

    # -- closing and scoring ---------------------------------------------------------------------
    def _expire(self, group: Group) -> None:
        if group.state is GroupState.OPEN:
            self._close(group, GroupState.TIMED_OUT)

    def _close(self, group: Group, state: GroupState) -> None:
        loop = asyncio.get_running_loop()
        group.state = state
        if group.timer is not None:
            group.timer.cancel()
        if self.open.get(group.key) is group:
            del self.open[group.key]  # the key's next request starts a new group
        self.closed.pop(group.key, None)
        self.closed[group.key] = group
        self.on_closed(group)
        task = loop.create_task(self._score(group))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _score(self, group: Group) -> None:
        try:
            try:
                answers = await self.score(group)
            except asyncio.CancelledError:  # close() stopped waiting for it
                raise GroupAbandoned(f"the server shut down before group '{group.key}' was scored") from None
        except Exception as exc:  # noqa: BLE001 - every waiting member gets the error
            group.outcome = exc
            for waiting in group.waiters:
                for future in waiting:
                    if not future.done():
                        future.set_exception(exc)
        else:
            group.outcome = answers
            for waiting, answer in zip(group.waiters, answers):
                for future in waiting:
                    if not future.done():  # a cancelled request (its client left) is skipped
                        future.set_result(answer)
        group.state, group.scored_at = GroupState.SCORED, asyncio.get_running_loop().time()

    async def close(self, limit_s: float) -> None:
        """Server shutdown: score every open group now as timed out, and wait up to ``limit_s``
        for every scoring to end (so that the scorer's threads and judge are closed after it);
        a scoring still running then is cancelled, and its members get :class:`GroupAbandoned`."""
        for group in list(self.open.values()):
            self._close(group, GroupState.TIMED_OUT)
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=limit_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
