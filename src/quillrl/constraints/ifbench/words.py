"""IFBench's ``words:*`` and ``sentence:*`` checks: letters, syllables, positions, sequences."""

from __future__ import annotations

import string
from collections import Counter

from ..spec import CheckResult
from . import text as T
from .base import IFBenchCheck, count_arg, show, text_arg
from .counts import word_pattern
from .resources import pos_tagger

_CONSONANTS = frozenset("bcdfghjklmnpqrstvwxyz")
_PRIMES = frozenset({2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71,
                     73, 79, 83, 89, 97})  # IFBench's list: a word of 101 letters fails


class AlphabetLoop(IFBenchCheck):
    """Each word starts with the letter after the previous word's, Z looping to A."""

    id = "words:alphabet"

    def check(self, text: str) -> CheckResult:
        words = T.without_punctuation(text).split()
        if not words:
            return self.result(False, "no words")
        letter = words[0][0].lower()
        if letter not in string.ascii_lowercase:
            return self.result(False, f"the first word starts with {letter!r}, not a letter")
        for word in words[1:]:
            letter = string.ascii_lowercase[(string.ascii_lowercase.index(letter) + 1) % 26]
            if word.lower()[0] != letter:
                return self.result(False, f"{T.shorten(word, 20)!r} should start with {letter!r}")
        return self.result(True, f"{len(words)} words in alphabet order")


class ThreeVowels(IFBenchCheck):
    """One paragraph (no newline inside) using at most three of the vowels a e i o u."""

    id = "words:vowel"

    def check(self, text: str) -> CheckResult:
        lines = text.strip().split("\n")
        if len(lines) != 1:
            return self.result(False, f"{len(lines)} lines; one paragraph required")
        used = sorted(set(lines[0].lower()) & set("aeiou"))
        return self.result(len(used) <= 3, f"vowels used: {' '.join(used) or 'none'}; at most "
                                           f"three kinds allowed")


class ConsonantCluster(IFBenchCheck):
    """Every whitespace token has two consonant letters in a row."""

    id = "words:consonants"

    def check(self, text: str) -> CheckResult:
        for word in text.lower().split():
            if not any(a in _CONSONANTS and b in _CONSONANTS for a, b in zip(word, word[1:])):
                return self.result(False, f"{T.shorten(word, 20)!r} has no consonant cluster")
        return self.result(True, "every word has a consonant cluster")


def _alliteration(sentence: str) -> int:
    """Words in runs of consecutive words sharing a first character (a run of k counts k)."""
    words = [w.lstrip(T.PUNCTUATION + " ") for w in sentence.lower().split()]
    words = [w for w in words if w]
    total, in_run = 0, False
    for a, b in zip(words, words[1:]):
        if a[0] == b[0]:
            total += 1 if in_run else 2
            in_run = True
        else:
            in_run = False
    return total


class AlliterationIncrement(IFBenchCheck):
    """Each sentence has more alliterating words than the one before."""

    id = "sentence:alliteration_increment"

    def check(self, text: str) -> CheckResult:
        counts = [_alliteration(s) for s in T.sentences(text)]
        rising = all(b > a for a, b in zip([-1] + counts, counts))
        return self.result(rising, f"alliterating words per sentence: {counts[:12]}; "
                                   "strictly rising required")


class Palindromes(IFBenchCheck):
    """At least 10 palindromes of 5+ characters (words, punctuation deleted; repeats count)."""

    id = "words:palindrome"

    def check(self, text: str) -> CheckResult:
        found = [w for w in T.bare_words(text) if len(w) >= 5 and w == w[::-1]]
        return self.result(len(found) >= 10, f"{len(found)} palindromes of 5+ letters; "
                                             "at least 10 required")


class PrimeLengths(IFBenchCheck):
    """Every word (punctuation deleted) has a prime number of characters."""

    id = "words:prime_lengths"

    def check(self, text: str) -> CheckResult:
        for word in T.without_punctuation(text).split():
            if len(word) not in _PRIMES:
                return self.result(False, f"{T.shorten(word, 20)!r} has {len(word)} "
                                          f"character{'' if len(word) == 1 else 's'}")
        return self.result(True, "every word has a prime length")


class StartWithVerb(IFBenchCheck):
    """The first NLTK token is tagged as a verb (VB*) by NLTK's perceptron tagger."""

    id = "words:start_verb"

    def check(self, text: str) -> CheckResult:
        tagger = pos_tagger()
        if tagger is None:
            return CheckResult(None, "undecided: NLTK's averaged_perceptron_tagger_eng is not "
                                     "installed (no PyPI package ships it; see docs/results.md)")
        # The tagger reads two words either side of a token, so the first three tokens decide
        # the first one's tag exactly as the whole text would.
        tokens = T.first_words(text, 3)
        if not tokens:
            return self.result(False, "no words")
        tag = tagger.tag(tokens)[0][1]
        return self.result("VB" in tag, f"starts with {T.shorten(tokens[0], 20)!r} ({tag})")


class LimitedRepeats(IFBenchCheck):
    """No word (lowercased, punctuation deleted) occurs more than ``small_n`` times."""

    id = "words:repeats"
    args = (count_arg("small_n"),)

    def check(self, text: str) -> CheckResult:
        word, n = (Counter(T.bare_words(text)).most_common(1) or [("", 0)])[0]
        limit = self.kwargs["small_n"]
        return self.result(n <= limit, f"{word!r} {n} times; at most {show(limit)} allowed")


class KeywordInSentence(IFBenchCheck):
    """``word`` occurs (whole word, any case) in the Nth sentence."""

    id = "sentence:keyword"
    args = (text_arg("word"), count_arg("N", minimum=1))

    def check(self, text: str) -> CheckResult:
        split, n = T.sentences(text), self.kwargs["N"]
        if len(split) < n:
            return self.result(False, f"{len(split)} sentences; the keyword must be in the "
                                      f"{T.ordinal(int(n))}")
        found = word_pattern(self.kwargs["word"]).search(split[int(n - 1)])
        return self.result(bool(found), f"{self.kwargs['word']!r} "
                                        f"{'is' if found else 'is not'} in sentence {show(n)}")


class AlternatingSyllables(IFBenchCheck):
    """Words alternate between odd and even syllable counts (syllapy's counts)."""

    id = "words:odd_even_syllables"

    def check(self, text: str) -> CheckResult:
        import syllapy  # loads its word table on import; only this check needs it

        words = T.bare_words(text)
        parity = [syllapy.count(w) % 2 for w in words]
        for i, (a, b) in enumerate(zip(parity, parity[1:])):
            if a == b:
                return self.result(False, f"{words[i]!r} and {words[i + 1]!r} both have "
                                          f"{'odd' if a else 'even'} syllable counts")
        return self.result(True, f"{len(words)} words alternate")


class LastWordFirst(IFBenchCheck):
    """Each sentence starts with the word the previous one ended with (any case)."""

    id = "words:last_first"

    def check(self, text: str) -> CheckResult:
        split = T.sentences(text)
        for left, right in zip(split, split[1:]):
            last = left.rstrip(T.PUNCTUATION + " ").split()
            first = right.lstrip(T.PUNCTUATION + " ").split()
            if not last or not first or last[-1].lower() != first[0].lower():
                return self.result(False, f"{T.shorten(right, 30)!r} does not start with the "
                                          "previous sentence's last word")
        return self.result(True, f"{len(split)} sentence(s), each starting with the last word "
                                 "before it")


class ParagraphLastFirst(IFBenchCheck):
    """Each non-empty line ends with the word it starts with (any case)."""

    id = "words:paragraph_last_first"

    def check(self, text: str) -> CheckResult:
        for line in text.split("\n"):
            words = T.strip_punct(line.strip().lower()).split()
            if words and words[0] != words[-1]:
                return self.result(False, f"{T.shorten(line, 30)!r} starts with {words[0]!r}, "
                                          f"ends with {words[-1]!r}")
        return self.result(True, "every paragraph ends with its first word")


class IncrementingWords(IFBenchCheck):
    """Each sentence has exactly ``small_n`` more words (punctuation deleted) than the last."""

    id = "sentence:increment"
    args = (count_arg("small_n"),)

    def check(self, text: str) -> CheckResult:
        counts = [len(T.without_punctuation(s).split()) for s in T.sentences(text)]
        step = self.kwargs["small_n"]
        for a, b in zip(counts, counts[1:]):
            if b != a + step:
                return self.result(False, f"words per sentence {counts[:12]}; each must add "
                                          f"{show(step)}")
        return self.result(bool(counts), f"words per sentence {counts[:12]}")


class NoConsecutiveFirstLetter(IFBenchCheck):
    """No two neighbouring words (lowercased, punctuation deleted) share a first letter."""

    id = "words:no_consecutive"

    def check(self, text: str) -> CheckResult:
        words = T.bare_words(text)
        for a, b in zip(words, words[1:]):
            if a[0] == b[0]:
                return self.result(False, f"{a!r} then {b!r}")
        return self.result(True, f"{len(words)} words, no neighbours share a first letter")


class KeywordAtPosition(IFBenchCheck):
    """``keyword`` is the mth word (NLTK tokens with a letter or digit) of the nth sentence."""

    id = "words:keywords_specific_position"
    args = (text_arg("keyword"), count_arg("n", minimum=1), count_arg("m", minimum=1))

    def check(self, text: str) -> CheckResult:
        n, m, keyword = self.kwargs["n"], self.kwargs["m"], self.kwargs["keyword"].strip()
        split = T.sentences(text)
        if len(split) < n:
            return self.result(False, f"{len(split)} sentences; sentence {show(n)} required")
        words = T.alnum_tokens(split[int(n) - 1])
        if len(words) < m:
            return self.result(False, f"sentence {show(n)} has {len(words)} words; "
                                      f"word {show(m)} required")
        word = words[int(m) - 1]
        return self.result(word.lower() == keyword.lower(),
                           f"word {show(m)} of sentence {show(n)} is {word!r}")


class WordsPosition(IFBenchCheck):
    """The second and the second-to-last NLTK tokens are both ``keyword``, not counting a last
    token that is punctuation."""

    id = "words:words_position"
    args = (text_arg("keyword"),)

    def check(self, text: str) -> CheckResult:
        keyword = self.kwargs["keyword"].strip().lower()
        head, tail = T.first_words(text, 3), T.last_words(text, 3)  # all that is read
        # IFBench's test is `words[-1] in string.punctuation`: a substring test, kept as is.
        closing = 1 if tail and tail[-1] in T.PUNCTUATION else 0
        if len(head) < 2 + closing:
            return self.result(False, f"{len(head)} tokens")
        second, second_last = head[1], tail[-2 - closing]
        return self.result(second.lower() == second_last.lower() == keyword,
                           f"second word {second!r}, second-to-last {second_last!r}")


WORD_CHECKS = (AlphabetLoop, ThreeVowels, ConsonantCluster, AlliterationIncrement, Palindromes,
               PrimeLengths, StartWithVerb, LimitedRepeats, KeywordInSentence,
               AlternatingSyllables, LastWordFirst, ParagraphLastFirst, IncrementingWords,
               NoConsecutiveFirstLetter, KeywordAtPosition, WordsPosition)
