"""Turn English length requirements ("about 800 words", "no more than 500 words") into word ranges.

Used by the WritingBench and WQRM importers to build ``creative:word_range`` constraints.

Rules (ours; neither dataset defines them):

- "between 300 and 500 words", "300-500 words", "a 150-200 word comment" → [300, 500].
- "at least / no less than / over / more than / exceeding / minimum N words" → min N.
- "no more than / not exceed / within / at most / up to / under / limited to N words" → max N.
- "about / around / approximately N words", "a 2500-word report", bare "N words" → N ± 20%
  (``ABOUT_TOLERANCE``): loose enough that a writer aiming at the number passes, tight enough that
  half or double the length fails.
- A statement about a part ("each section", "per week", "200 words each") or a change ("increase
  by 300 words") is not a requirement on the whole response and is ignored. When a statement
  about the total ("total", "overall", "totaling") is present it wins; otherwise the first
  remaining statement is taken, since queries state the main requirement first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ABOUT_TOLERANCE = 0.2

_NUM = r"\d{1,3}(?:,\d{3})+|\d+"
_WORDS = r"[- ]?words?\b"
_RANGE = re.compile(rf"(?P<lo>{_NUM})\s*(?:-|–|—|~|to|and)\s*(?P<hi>{_NUM}){_WORDS}", re.I)
_SINGLE = re.compile(rf"(?P<n>{_NUM}){_WORDS}", re.I)
_MIN_CUES = ("at least", "no less than", "not less than", "no fewer than", "not fewer than",
             "more than", "over", "exceeding", "exceed", "minimum", "minimum of", "a minimum of",
             "upwards of", "above")
_MAX_CUES = ("no more than", "not more than", "not exceed", "not to exceed", "not exceeding",
             "within", "at most", "up to", "under", "less than", "fewer than", "maximum",
             "a maximum of", "limited to", "below", "no longer than", "max")
_PART_CUES = re.compile(r"\b(each|per|every|several)\b", re.I)
# After the number only an immediate "each"/"per ..." scopes it ("200 words each"); a later
# "each" in the clause is usually about something else ("... adding emojis for each section").
_PART_AFTER = re.compile(r"^\s*(?:each|per|every|for each|for every|apiece)\b", re.I)
_CHANGE_CUES = re.compile(r"\b(increase|increased|add|added|expand|expanded|reduce|cut|shorten)"
                          r"\w*\s+(?:it\s+)?by\b", re.I)
_TOTAL_CUES = re.compile(r"\b(total|totaling|totalling|overall|in all|altogether)\b", re.I)
# Where a statement's own clause starts: the statement's scope rarely crosses these.
_CLAUSE_BREAK = re.compile(r"[.;:\n!?()]|\d\)\s")


@dataclass(frozen=True)
class WordRange:
    """A requirement on the whole response; ``kind`` is range, min, max or about."""

    min_words: int | None
    max_words: int | None
    kind: str
    text: str

    def kwargs(self) -> dict[str, int]:
        """The kwargs of a ``creative:word_range`` constraint."""
        out = {}
        if self.min_words is not None:
            out["min_words"] = self.min_words
        if self.max_words is not None:
            out["max_words"] = self.max_words
        return out


def about(n: int, tolerance: float = ABOUT_TOLERANCE) -> tuple[int, int]:
    """The range accepted for "about n words".

    >>> about(800)
    (640, 960)
    """
    return round(n * (1 - tolerance)), round(n * (1 + tolerance))


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def _clause(text: str, start: int, end: int) -> tuple[str, str]:
    """The clause text before and after a statement, cut at the nearest clause breaks."""
    before = text[:start]
    breaks = list(_CLAUSE_BREAK.finditer(before))
    before = before[breaks[-1].end():] if breaks else before
    after = text[end:]
    nxt = _CLAUSE_BREAK.search(after)
    return before, after[:nxt.start()] if nxt else after


def _cue_before(before: str) -> str | None:
    """"min" or "max" when the words right before the number say so ("no less than 800")."""
    tail = re.sub(r"\s+", " ", before.lower()).rstrip(" :")
    tail = re.sub(r"\b(approximately|about|around|roughly|some|a|of|be|is|should|must)$", "",
                  tail).rstrip()
    # The longest cue wins, so "no less than" (min) beats the "less than" (max) inside it.
    hits = [(len(c), kind) for kind, cues in (("min", _MIN_CUES), ("max", _MAX_CUES))
            for c in cues if re.search(rf"\b{re.escape(c)}$", tail)]
    return max(hits)[1] if hits else None


def _statements(text: str):
    """Every word-count statement: (start, end, WordRange, about_a_part, about_the_total)."""
    taken: list[tuple[int, int]] = []
    for match in _RANGE.finditer(text):
        lo, hi = sorted((_int(match["lo"]), _int(match["hi"])))
        taken.append(match.span())
        yield match.start(), match.end(), WordRange(lo, hi, "range", match.group(0))
    for match in _SINGLE.finditer(text):
        if any(a <= match.start() < b for a, b in taken):
            continue
        n = _int(match["n"])
        before = text[:match.start()]
        cue = _cue_before(before)
        if cue == "max":
            yield match.start(), match.end(), WordRange(None, n, "max", match.group(0))
        elif cue == "min":
            yield match.start(), match.end(), WordRange(n, None, "min", match.group(0))
        else:
            lo, hi = about(n)
            yield match.start(), match.end(), WordRange(lo, hi, "about", match.group(0))


def parse_word_requirement(text: str) -> WordRange | None:
    """The word-count requirement a query puts on the whole response, or None if it states none.

    >>> parse_word_requirement("Write an essay of between 300 and 500 words.").kwargs()
    {'min_words': 300, 'max_words': 500}
    >>> parse_word_requirement("Keep it to no more than 500 words.").kwargs()
    {'max_words': 500}
    >>> parse_word_requirement("Each section about 1,000 words, totaling 3,000 words.").kwargs()
    {'min_words': 2400, 'max_words': 3600}
    >>> parse_word_requirement("Write a haiku.") is None
    True
    """
    whole, totals = [], []
    for start, end, found in sorted(_statements(text), key=lambda s: s[0]):
        before, after = _clause(text, start, end)
        if _CHANGE_CUES.search(before):
            continue
        if _TOTAL_CUES.search(before):
            totals.append(found)
        elif not (_PART_CUES.search(before) or _PART_AFTER.search(after)):
            whole.append(found)
    if totals:
        return totals[0]
    return whole[0] if whole else None
