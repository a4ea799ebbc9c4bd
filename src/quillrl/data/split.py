"""A fixed, seeded train/test split by group (usually the prompt), never by row.

Several StoryER pairs share a prompt (one prompt has 96 pairs), so splitting rows would put the
same prompt on both sides and inflate test accuracy. We split whole groups and aim the test side
at ``test_fraction`` of the *records*: groups are visited in a seeded random order and a group
joins the test side when that brings the test count closer to the target. The order is drawn
from the sorted group keys, so the split depends only on the set of groups, their sizes and the
seed, never on the file's row order or on Python's hash seed.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

SPLITS = ("train", "test", "all")


def pick_test_groups(sizes: dict[str, int], seed: int, test_fraction: float = 0.2) -> set[str]:
    """The groups on the test side, given each group's record count.

    >>> sorted(pick_test_groups({"a": 1, "b": 1, "c": 1, "d": 1, "e": 1}, seed=0))
    ['c']
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    order = sorted(sizes)
    random.Random(seed).shuffle(order)
    target = test_fraction * sum(sizes.values())
    chosen, count = set(), 0
    for group in order:
        if abs(count + sizes[group] - target) < abs(count - target):
            chosen.add(group)
            count += sizes[group]
    return chosen


def split_by_group(records: Sequence[T], group_of: Callable[[T], str], split: str, seed: int,
                   test_fraction: float = 0.2) -> list[T]:
    """The records of one side (``train`` or ``test``), or all of them (``all``), in file order."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    if split == "all":
        return list(records)
    sizes = Counter(group_of(r) for r in records)
    test = pick_test_groups(dict(sizes), seed, test_fraction)
    want_test = split == "test"
    return [r for r in records if (group_of(r) in test) == want_test]
