"""IFBench's ``count:*`` and ``ratio:*`` checks: words, keywords, names, numbers, ratios.

Each keeps IFBench's own tokenization (see ``text.py``) and comparison, so a verdict equals
IFBench's; where that tokenization is surprising, the docstring says so.
"""

from __future__ import annotations

import re

from ..spec import CheckResult
from . import text as T
from .base import IFBenchCheck, count_arg, show, text_arg
from .resources import MissingResource, stopwords

CONJUNCTIONS = ("and", "but", "for", "nor", "or", "so", "yet")
PERSON_NAMES = (
    "Emma", "Liam", "Sophia", "Jackson", "Olivia", "Noah", "Ava", "Lucas", "Isabella", "Mason",
    "Mia", "Ethan", "Charlotte", "Alexander", "Amelia", "Benjamin", "Harper", "Leo", "Zoe",
    "Daniel", "Chloe", "Samuel", "Lily", "Matthew", "Grace", "Owen", "Abigail", "Gabriel", "Ella",
    "Jacob", "Scarlett", "Nathan", "Victoria", "Elijah", "Layla", "Nicholas", "Audrey", "David",
    "Hannah", "Christopher", "Penelope", "Thomas", "Nora", "Andrew", "Aria", "Joseph", "Claire",
    "Ryan", "Stella", "Jonathan")
# One pass for all 50: whole words never overlap, so the set found equals 50 separate searches.
_NAMES = re.compile(r"\b(?:" + "|".join(PERSON_NAMES) + r")\b")
PRONOUNS = frozenset("""
    i me we us you he him she her it they them
    my mine our ours your yours his hers its their theirs
    myself ourselves yourself yourselves himself herself itself themselves
    this that these those who whom whose which what whoever whomever whatever whichever
    anybody anyone anything everybody everyone everything nobody nothing somebody someone
    something each either neither both all some any none""".split())
KEYWORD_TIMES = (1, 2, 3, 5, 7)  # keyword1 once, keyword2 twice, ... keyword5 seven times


def word_pattern(word: str) -> re.Pattern[str]:
    """``word`` between regex word boundaries, ignoring case (IFBench's keyword match)."""
    return re.compile(rf"\b{re.escape(word)}\b", re.IGNORECASE)


class WordCountRange(IFBenchCheck):
    """``min_words <= words <= max_words``; words are runs of ``\\w`` ("it's" is two)."""

    id = "count:word_count_range"
    args = (count_arg("min_words"), count_arg("max_words"))

    @classmethod
    def validate_together(cls, kwargs):
        if kwargs["min_words"] > kwargs["max_words"]:
            raise cls.error(f"min_words ({kwargs['min_words']}) is above max_words "
                            f"({kwargs['max_words']})")

    def check(self, text: str) -> CheckResult:
        n, low, high = len(T.regex_words(text)), self.kwargs["min_words"], self.kwargs["max_words"]
        return self.result(low <= n <= high, f"{n} words; {show(low)}-{show(high)} required")


class UniqueWordCount(IFBenchCheck):
    """At least N distinct lowercased whitespace tokens, punctuation trimmed from the ends."""

    id = "count:unique_word_count"
    args = (count_arg("N"),)

    def check(self, text: str) -> CheckResult:
        n = len({T.strip_punct(token) for token in text.lower().split()})
        return self.result(n >= self.kwargs["N"],
                           f"{n} unique words; at least {show(self.kwargs['N'])} required")


class StopWordPercentage(IFBenchCheck):
    """Stopwords (NLTK's English list) are at most ``percentage``% of the ``\\w+`` words."""

    id = "ratio:stop_words"
    args = (count_arg("percentage"),)

    def check(self, text: str) -> CheckResult:
        try:
            words = stopwords()
        except MissingResource as exc:
            return CheckResult(None, str(exc))
        tokens = T.regex_words(text)
        if not tokens:
            return self.result(False, "no words")
        share = 100 * sum(t.lower() in words for t in tokens) / len(tokens)
        limit = self.kwargs["percentage"]
        return self.result(share <= limit, f"{share:.1f}% stopwords; at most {show(limit)}% allowed")


def _ending_counts(text: str) -> tuple[int, int, int]:
    """Sentences ending in '.', '?' and '!' (NLTK's split; anything else counts as none)."""
    split = T.sentences(text)
    return tuple(sum(s.endswith(mark) for s in split) for mark in ".?!")


class SentenceTypeRatio(IFBenchCheck):
    """Declarative ('.') sentences are exactly twice the interrogative ('?') ones (0 and 0 too)."""

    id = "ratio:sentence_type"

    def check(self, text: str) -> CheckResult:
        statements, questions, _ = _ending_counts(text)
        return self.result(statements == 2 * questions,
                           f"{statements} statements and {questions} questions; 2:1 required")


class SentenceBalance(IFBenchCheck):
    """As many '.' sentences as '?' ones as '!' ones."""

    id = "ratio:sentence_balance"

    def check(self, text: str) -> CheckResult:
        counts = _ending_counts(text)
        return self.result(len(set(counts)) == 1, "{} '.', {} '?' and {} '!' sentences; equal "
                                                  "numbers required".format(*counts))


class ConjunctionCount(IFBenchCheck):
    """At least ``small_n`` different coordinating conjunctions. As in IFBench, "different"
    compares the raw tokens, so "and" and "And," count as two."""

    id = "count:conjunctions"
    args = (count_arg("small_n"),)

    def check(self, text: str) -> CheckResult:
        found = {t for t in text.split() if T.strip_punct(t).lower() in CONJUNCTIONS}
        return self.result(len(found) >= self.kwargs["small_n"],
                           f"{len(found)} different conjunctions; at least "
                           f"{show(self.kwargs['small_n'])} required")


class PersonNameCount(IFBenchCheck):
    """At least N of IFBench's 50 first names, each as a whole word, case-sensitive."""

    id = "count:person_names"
    args = (count_arg("N"),)

    def check(self, text: str) -> CheckResult:
        n = len(set(_NAMES.findall(text)))
        return self.result(n >= self.kwargs["N"], f"{n} of the listed names; at least "
                                                  f"{show(self.kwargs['N'])} required")


def character_trigrams(text: str) -> set[tuple[str, str, str]]:
    """The distinct runs of 3 characters (what ``nltk.ngrams(text, 3)`` gives on a string).

    >>> sorted(character_trigrams("abcd"))
    [('a', 'b', 'c'), ('b', 'c', 'd')]
    """
    return set(zip(text, text[1:], text[2:]))


class TrigramOverlap(IFBenchCheck):
    """The share of the response's distinct character trigrams found in the reference text is
    within 2 points of ``percentage``. (IFBench at db69a6f, whose data and outputs we match,
    takes trigrams of characters; later IFBench takes trigrams of NLTK words.)"""

    id = "ratio:overlap"
    args = (text_arg("reference_text"), count_arg("percentage"))

    def __init__(self, kwargs=None):
        super().__init__(kwargs)
        self._reference = character_trigrams(self.kwargs["reference_text"])

    def check(self, text: str) -> CheckResult:
        grams = character_trigrams(text)
        if not grams:
            return self.result(False, "no trigrams")
        share = 100 * len(grams & self._reference) / len(grams)
        target = self.kwargs["percentage"]
        return self.result(target - 2 <= share <= target + 2,
                           f"{share:.1f}% trigram overlap; {show(target)}% ± 2 required")


class NumbersCount(IFBenchCheck):
    """Exactly N numbers: digit runs once punctuation is deleted (so "3.5" is one number)."""

    id = "count:numbers"
    args = (count_arg("N"),)

    def check(self, text: str) -> CheckResult:
        n = len(re.findall(r"\d+", T.without_punctuation(text)))
        return self.result(n == self.kwargs["N"], f"{n} numbers; exactly "
                                                  f"{show(self.kwargs['N'])} required")


class PronounCount(IFBenchCheck):
    """At least N pronouns among the lowercased NLTK tokens ('/' read as a space)."""

    id = "count:pronouns"
    args = (count_arg("N"),)

    def check(self, text: str) -> CheckResult:
        need, n = self.kwargs["N"], 0
        for sentence in T.sentences(text.replace("/", " ").lower()):
            n += sum(t in PRONOUNS for t in T.sentence_words(sentence))
            if n >= need:  # enough: the rest need not be tokenized
                return self.result(True, f"{n}+ pronouns; at least {show(need)} required")
        return self.result(n >= need, f"{n} pronouns; at least {show(need)} required")


class JapaneseNthWord(IFBenchCheck):
    """Every Nth whitespace token (not a bare number) contains kana or kanji."""

    id = "count:words_japanese"
    args = (count_arg("N", minimum=1),)
    _JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")

    def check(self, text: str) -> CheckResult:
        every = self.kwargs["N"]
        for i, token in enumerate(text.split()):
            word = T.strip_punct(token)
            if (i + 1) % every == 0 and word and not word.isdigit() and not self._JAPANESE.search(word):
                return self.result(False, f"word {i + 1} ({T.shorten(word, 20)!r}) is not Japanese")
        return self.result(True, f"every {T.ordinal(int(every))} word is Japanese")


class KeywordsMultiple(IFBenchCheck):
    """keyword1..keyword5 occur exactly 1, 2, 3, 5 and 7 times, ignoring case. As IFBench at
    db69a6f counts, occurrences inside longer words count too ("cat" in "concatenate")."""

    id = "count:keywords_multiple"
    args = tuple(text_arg(f"keyword{i}") for i in range(1, 6))

    def check(self, text: str) -> CheckResult:
        lowered = text.lower()
        for i, times in zip(range(1, 6), KEYWORD_TIMES):
            word = self.kwargs[f"keyword{i}"].strip()
            n = lowered.count(word.lower())
            if n != times:
                return self.result(False, f"{word!r} {n} times; exactly {times} required")
        return self.result(True, "every keyword the required number of times")


class PunctuationCover(IFBenchCheck):
    """Uses . , ! ? ; : and an interrobang ('?!', '!?' or '‽'); the first '?!' (else '!?') does
    not count for the '?' and '!'."""

    id = "count:punctuation"

    def check(self, text: str) -> CheckResult:
        if not ("!?" in text or "?!" in text or "‽" in text):
            return self.result(False, "no interrobang")
        rest = text.replace("?!", "", 1)
        if len(rest) == len(text):
            rest = text.replace("!?", "", 1)
        missing = [mark for mark in ".,!?;:" if mark not in rest]
        return self.result(not missing, f"missing {' '.join(missing)}" if missing
                           else "every punctuation mark used")


class EqualSentenceLengths(IFBenchCheck):
    """Three sentences with the same number of characters. (The instruction also asks for all
    different words; IFBench at db69a6f does not check that, so neither do we.)"""

    id = "ratio:sentence_words"

    def check(self, text: str) -> CheckResult:
        split = T.sentences(text)
        if len(split) != 3:
            return self.result(False, f"{len(split)} sentences; 3 required")
        lengths = [len(s.strip()) for s in split]
        return self.result(len(set(lengths)) == 1, f"sentence lengths {lengths}; equal required")


COUNT_CHECKS = (WordCountRange, UniqueWordCount, StopWordPercentage, SentenceTypeRatio,
                SentenceBalance, ConjunctionCount, PersonNameCount, TrigramOverlap, NumbersCount,
                PronounCount, JapaneseNthWord, KeywordsMultiple, PunctuationCover,
                EqualSentenceLengths)
