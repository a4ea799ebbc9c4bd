"""Creative-writing constraints IFEval lacks: length, form, voice, vocabulary, endings.

One small class per check; each reads its kwargs once (validated by ``Check``) and gives a
verdict with a one-line reason a writer can act on ("412 words; at most 300 allowed"). What a
word, line, stanza and dialogue are is defined once, in ``text.py``.
"""

from __future__ import annotations

import unicodedata
from abc import abstractmethod
from collections import Counter
from typing import Any

from . import text as T
from .base import Arg, Check
from .spec import CheckResult
from .syllables import describe_counts, line_syllables


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class CreativeCheck(Check):
    """The base of our ``creative:*`` checks: their family."""

    family = "creative"


def _range_args(unit: str) -> tuple[Arg, Arg]:
    return (Arg(f"min_{unit}s", "int", required=False, minimum=0),
            Arg(f"max_{unit}s", "int", required=False, minimum=0))


class _Range(CreativeCheck):
    """Shared by word and line counts: ``min_<unit>s`` and/or ``max_<unit>s``, inclusive."""

    unit = ""

    @classmethod
    def validate_together(cls, kwargs: dict[str, Any]) -> None:
        low, high = kwargs.get(f"min_{cls.unit}s"), kwargs.get(f"max_{cls.unit}s")
        if low is None and high is None:
            raise cls.error(f"give min_{cls.unit}s, max_{cls.unit}s or both")
        if low is not None and high is not None and low > high:
            raise cls.error(f"min_{cls.unit}s ({low}) is above max_{cls.unit}s ({high})")

    @abstractmethod
    def count(self, text: str) -> int:
        """How many units (words, lines) ``text`` has."""

    def check(self, text: str) -> CheckResult:
        n = self.count(text)
        low, high = self.kwargs.get(f"min_{self.unit}s"), self.kwargs.get(f"max_{self.unit}s")
        have = _plural(n, self.unit)
        if low is not None and n < low:
            return CheckResult(False, f"{have}; at least {low} required")
        if high is not None and n > high:
            return CheckResult(False, f"{have}; at most {high} allowed")
        bounds = (f"{low}-{high}" if low is not None and high is not None
                  else f">= {low}" if low is not None else f"<= {high}")
        return CheckResult(True, f"{have}; {bounds} required")


class WordRange(_Range):
    """The response has between ``min_words`` and ``max_words`` words (inclusive)."""

    id = "creative:word_range"
    unit = "word"
    args = _range_args(unit)

    def count(self, text: str) -> int:
        return len(T.words(text))


class LineCount(_Range):
    """The response has between ``min_lines`` and ``max_lines`` non-empty lines (inclusive)."""

    id = "creative:line_count"
    unit = "line"
    args = _range_args(unit)

    def count(self, text: str) -> int:
        return len(T.lines(text))


class StanzaCount(CreativeCheck):
    """The response has exactly ``num_stanzas`` blocks of lines separated by blank lines."""

    id = "creative:stanza_count"
    args = (Arg("num_stanzas", "int", minimum=1),)

    def check(self, text: str) -> CheckResult:
        n, want = len(T.stanzas(text)), self.kwargs["num_stanzas"]
        return CheckResult(n == want, f"{_plural(n, 'stanza')}; exactly {want} required")


class SyllablePattern(CreativeCheck):
    """Line i (of the non-empty lines) has exactly ``pattern[i]`` syllables; as many lines."""

    id = "creative:syllable_pattern"
    args = (Arg("pattern", "int list", minimum=1, note="syllables per line, e.g. [5, 7, 5]"),)

    def check(self, text: str) -> CheckResult:
        pattern, lines = self.kwargs["pattern"], T.lines(text)
        if len(lines) != len(pattern):
            return CheckResult(False, f"{_plural(len(lines), 'line')}; the pattern "
                                      f"{pattern} needs {len(pattern)}")
        counts = [line_syllables(line) for line in lines]
        wrong = [i for i, (c, want) in enumerate(zip(counts, pattern)) if want not in c]
        if not wrong:
            return CheckResult(True, f"all {len(pattern)} lines match {pattern}")
        i = wrong[0]
        more = f" ({len(wrong)} of {len(pattern)} lines off)" if len(wrong) > 1 else ""
        return CheckResult(False, f"line {i + 1} has {describe_counts(counts[i])} syllables; "
                                  f"{pattern[i]} required{more}")


class Acrostic(CreativeCheck):
    """The first letters of the non-empty lines spell ``word`` (letters only, any case)."""

    id = "creative:acrostic"
    args = (Arg("word", "str"),)

    @classmethod
    def validate_together(cls, kwargs: dict[str, Any]) -> None:
        if not any(c.isalpha() for c in kwargs["word"]):
            raise cls.error(f"word {kwargs['word']!r} has no letters to spell")

    def check(self, text: str) -> CheckResult:
        want = "".join(c for c in self.kwargs["word"] if c.isalpha()).upper()
        # A line's first letter skips markup and quotes ("**H**ope", "“Hope”").
        got = "".join(next((c for c in line if c.isalpha()), "·") for line in T.lines(text))
        got = got.upper()
        if got == want:
            return CheckResult(True, f"first letters spell {want!r}")
        return CheckResult(False, f"first letters spell {T.shorten(got, 40)!r}; {want!r} required")


_PRONOUNS = {
    "first": {"i", "me", "my", "mine", "myself", "we", "us", "our", "ours", "ourselves"},
    "second": {"you", "your", "yours", "yourself", "yourselves"},
    "third": {"he", "him", "his", "himself", "she", "her", "hers", "herself",
              "they", "them", "their", "theirs", "themselves"},
}


class PointOfView(CreativeCheck):
    """The narration (text outside dialogue) is in the first, second or third person.

    Narration is first person if it uses a first-person pronoun at all (a first-person narrator
    may still address "you" and talk about "her"), else second person if it uses "you", else
    third person. Pronouns inside quotes are speech, not narration, and are ignored.
    """

    id = "creative:point_of_view"
    args = (Arg("person", "str", choices=("first", "second", "third")),)

    def check(self, text: str) -> CheckResult:
        counts: dict[str, Counter[str]] = {person: Counter() for person in _PRONOUNS}
        for word in T.words(T.narration(text)):
            if word == "US":  # the country, not the pronoun
                continue
            head = word.lower().split("'")[0]  # "I'm" -> "i", "you'd" -> "you"
            for person, pronouns in _PRONOUNS.items():
                if head in pronouns:
                    counts[person][head] += 1
        found = next((p for p in ("first", "second") if counts[p]), "third")
        want = self.kwargs["person"]
        evidence = ("no first- or second-person pronouns" if found == "third" else
                    ", ".join(f"{w} ×{n}" for w, n in counts[found].most_common(3)))
        why = f"narration is {found} person ({evidence})"
        return CheckResult(found == want, why if found == want else f"{why}; {want} required")


class _Phrases(CreativeCheck):
    """Shared by include and forbid: ``words`` (words or phrases), each compiled once as a
    whole-word, case-blind pattern (:func:`text.phrase_pattern`)."""

    args = (Arg("words", "str list"),)

    def __init__(self, kwargs=None) -> None:
        super().__init__(kwargs)
        self._patterns = [(w, T.phrase_pattern(w)) for w in self.kwargs["words"]]


class IncludeWords(_Phrases):
    """Every one of ``words`` (words or phrases) occurs as whole words, ignoring case."""

    id = "creative:include_words"

    def check(self, text: str) -> CheckResult:
        text = T.normalize_apostrophes(text)
        missing = [w for w, pattern in self._patterns if not pattern.search(text)]
        if not missing:
            return CheckResult(True, f"all {_plural(len(self._patterns), 'word')} present")
        listed = ", ".join(repr(w) for w in missing[:5]) + (", …" if len(missing) > 5 else "")
        return CheckResult(False, f"missing {len(missing)} of {len(self._patterns)}: {listed}")


class ForbidWords(_Phrases):
    """None of ``words`` (words or phrases) occurs as whole words, ignoring case."""

    id = "creative:forbid_words"

    def check(self, text: str) -> CheckResult:
        text = T.normalize_apostrophes(text)
        found = [(w, len(p.findall(text))) for w, p in self._patterns]
        found = [(w, n) for w, n in found if n]
        if not found:
            return CheckResult(True, f"none of the {_plural(len(self._patterns), 'forbidden word')}"
                                     " used")
        listed = ", ".join(f"{w!r} ×{n}" for w, n in found[:5])
        listed += ", …" if len(found) > 5 else ""
        return CheckResult(False, f"uses {listed}")


def _fold(s: str) -> str:
    # NFC first, so an "é" typed as e + combining accent equals the precomposed one.
    return unicodedata.normalize("NFC", s).casefold()


class EndsWith(CreativeCheck):
    """The stripped response ends with ``text`` (stripped too), ignoring case."""

    id = "creative:ends_with"
    args = (Arg("text", "str"),)

    def check(self, text: str) -> CheckResult:
        want = self.kwargs["text"].strip()
        ending = text.strip()
        if _fold(ending).endswith(_fold(want)):
            return CheckResult(True, f"ends with {want!r}")
        tail = T.shorten(ending[-max(len(want), 20):], 40)
        return CheckResult(False, f"ends with {tail!r}; must end with {want!r}")


class NoDialogue(CreativeCheck):
    """No text inside straight or curly double quotes."""

    id = "creative:no_dialogue"

    def check(self, text: str) -> CheckResult:
        quoted = T.dialogue(text)
        if not quoted:
            return CheckResult(True, "no quoted dialogue")
        return CheckResult(False, f"{_plural(len(quoted), 'quoted passage')}, first: "
                                  f"{T.shorten(quoted[0], 40)}")


CREATIVE_CHECKS: tuple[type[CreativeCheck], ...] = (
    WordRange, LineCount, StanzaCount, SyllablePattern, Acrostic,
    PointOfView, IncludeWords, ForbidWords, EndsWith, NoDialogue,
)
