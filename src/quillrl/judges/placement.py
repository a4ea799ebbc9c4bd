"""Where the two texts of a pair are shown to a judge: the one A/B placement of the package.

A pairwise judge that favours a slot would score a text by where it sits, not by what it says,
so the first text of a pair (a preference pair's ``chosen``, a head-to-head's A response, a
GenRM training pair's human-preferred story) goes to slot A or B by a seeded coin. The coin is a
function of ``(seed, key)`` only, never of a random stream, so a pair is placed the same way
judged alone, in a batch, after ``--limit``, in a resumed run or in another process. Judging,
``eval alignment``, the injection measurement, ``eval winrate`` and GenRM GRPO all call
:func:`first_slot` (docs/design.md, "Policy evaluation").
"""

from __future__ import annotations

import hashlib
from typing import Literal


def first_slot(key: str, seed: int = 0) -> Literal["A", "B"]:
    """``"A"`` or ``"B"``: the slot of a pair's first text, from the parity of the first byte of
    ``sha256(f"{seed}\\x00{key}")``.

    >>> [first_slot(f"p{i}") for i in range(6)]
    ['A', 'A', 'B', 'A', 'A', 'A']
    >>> first_slot("p2", seed=1)
    'A'
    """
    digest = hashlib.sha256(f"{int(seed)}\x00{key}".encode()).digest()
    return "A" if digest[0] % 2 == 0 else "B"
