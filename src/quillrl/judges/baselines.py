"""Baseline judges that read no meaning: the floor every learned judge must beat.

* :class:`LengthJudge` (``baseline:length``): the longer response in words wins; equal lengths
  tie at 0.5. Judges are known to favour length, so this measures how far "better" is just
  "longer" on a preference set.
* :class:`RandomJudge` (``baseline:random[:seed]``): ``p(A ≻ B)`` uniform in [0, 1). It is a
  function of (seed, prompt, a, b), not of a random stream, so a pair gets the same number
  whether it is judged alone, in a batch, or in another order of calls.
"""

from __future__ import annotations

import hashlib
import struct

from ..rewards.style import word_count
from .base import Judge, Judgment, Pair, scored_judgment


class LengthJudge(Judge):
    """``p(A ≻ B)`` = 1 if A has more words, 0 if fewer, 0.5 on a tie (verdict ``None``)."""

    name = "baseline:length"

    def _compare_many(self, pairs: list[Pair]) -> list[Judgment]:
        out = []
        for _, a, b in pairs:
            n_a, n_b = word_count(a), word_count(b)
            p = 1.0 if n_a > n_b else 0.0 if n_a < n_b else 0.5
            out.append(scored_judgment(p, raw=f"words_A={n_a} words_B={n_b}",
                                       extra={"words_a": n_a, "words_b": n_b}))
        return out


class RandomJudge(Judge):
    """``p(A ≻ B)`` uniform in [0, 1), reproducible from ``seed`` and the pair's text."""

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self.name = f"baseline:random:{self.seed}"

    def _uniform(self, prompt: str, a: str, b: str) -> float:
        # Length-prefixed fields so ("ab", "c") and ("a", "bc") hash differently.
        h = hashlib.sha256(str(self.seed).encode())
        for field in (prompt, a, b):
            data = field.encode()
            h.update(struct.pack(">Q", len(data)) + data)
        # 53 random bits -> a float in [0, 1), as random.random() does.
        return (int.from_bytes(h.digest()[:8], "big") >> 11) / float(1 << 53)

    def _compare_many(self, pairs: list[Pair]) -> list[Judgment]:
        out = []
        for prompt, a, b in pairs:
            p = self._uniform(prompt, a, b)
            out.append(scored_judgment(p, raw=f"uniform={p!r} seed={self.seed}"))
        return out
