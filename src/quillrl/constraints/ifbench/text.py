"""How IFBench's checks see a text: its sentence splitter and its several word splitters.

IFBench does not have one notion of "a word"; each check uses one of these, and we keep each
one exactly (docs/design.md, "IFBench constraints"), so that our verdicts are IFBench's:

- ``sentences``: NLTK's ``sent_tokenize`` (Punkt, English);
- ``regex_words``: runs of ``\\w`` (its ``count_words``);
- ``nltk_words``: NLTK's ``word_tokenize``; ``alnum_tokens``: those with a letter or digit;
- ``bare_words``: lowercased, ASCII punctuation deleted, split on whitespace;
- ``strip_punct``: a token with ASCII punctuation and spaces trimmed from both ends.

Sentence splits are cached per text and Treebank tokens per sentence: loose verification runs
every check on eight variants of a response, which share most of their sentences, and several
checks split the same variant. Both splitters run NLTK's algorithms with its own patterns, minus
overhead that cannot change a token (``_sentence_spans`` here, ``treebank.tokenize``;
docs/design.md, "IFBench check speed").
"""

from __future__ import annotations

import functools
import re
import string

from ..lazy import load_once
from ..punkt_data import ensure_punkt
from ..text import shorten  # noqa: F401  (reasons quote words through it)
from . import treebank

PUNCTUATION = string.punctuation
_DELETE_PUNCTUATION = str.maketrans("", "", PUNCTUATION)
_REGEX_WORD = re.compile(r"\w+")


def without_punctuation(text: str) -> str:
    """``text`` with every ASCII punctuation character deleted.

    >>> without_punctuation("don't, stop!")
    'dont stop'
    """
    return text.translate(_DELETE_PUNCTUATION)


def strip_punct(token: str) -> str:
    """A token with ASCII punctuation and spaces trimmed from both ends.

    >>> strip_punct('"Hello,"')
    'Hello'
    """
    return token.strip(PUNCTUATION + " ")


def regex_words(text: str) -> list[str]:
    """IFBench's ``count_words`` tokens: runs of word characters.

    >>> regex_words("It's 3-4 words")
    ['It', 's', '3', '4', 'words']
    """
    return _REGEX_WORD.findall(text)


def bare_words(text: str) -> list[str]:
    """Lowercased, punctuation deleted, split on whitespace.

    >>> bare_words("Don't STOP, now!")
    ['dont', 'stop', 'now']
    """
    return without_punctuation(text.lower()).split()


@functools.lru_cache(maxsize=512)
def sentences(text: str) -> tuple[str, ...]:
    """NLTK's English sentence split (``nltk.sent_tokenize``), as IFBench's
    ``split_into_sentences``.

    >>> sentences("One. Two? Three!")
    ('One.', 'Two?', 'Three!')
    """
    return tuple(text[start:stop] for start, stop in _sentence_spans(text))


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    """``PunktTokenizer.span_tokenize(text)``, step for step: its candidate boundaries
    (``_match_potential_end_contexts``), its decisions (``text_contains_sentbreak``, cached),
    its slices (``_slices_from_text``) and its realignment (``_realign_boundaries``), with NLTK's
    own compiled patterns called without their ReDoS timeout and the previous word's start found
    by one match instead of a character loop. Equal to ``nltk.sent_tokenize`` on IFBench's and
    IFEval's responses (tests/test_ifbench_tokenize.py)."""
    tokenizer = _punkt()
    period, realignment = _punkt_patterns()
    breaks: list[tuple[int, int]] = []
    last_break = 0

    def decide(match, context: str) -> None:  # one step of _slices_from_text
        nonlocal last_break
        if tokenizer.text_contains_sentbreak(context):
            breaks.append((last_break, match.end()))
            last_break = match.start("next_tok") if match.group("next_tok") else match.end()

    prev_start = prev_stop = 0
    prev_match = None
    for match in period.finditer(text):
        start = match.start()
        space = _UP_TO_LAST_SPACE.match(text, prev_stop, start)
        # NLTK's rule: whitespace right at prev_stop (its relative index 0) counts as none.
        word_start = space.end() if space and space.end() - 1 > prev_stop else prev_start
        if prev_match is not None and prev_stop <= word_start:
            decide(prev_match, text[prev_start:prev_stop] + prev_match.group()
                   + prev_match.group("after_tok"))
        prev_match, prev_start, prev_stop = match, word_start, start
    if prev_match is not None:
        decide(prev_match, text[prev_start:prev_stop] + prev_match.group()
               + prev_match.group("after_tok"))
    breaks.append((last_break, len(text.rstrip())))

    spans: list[tuple[int, int]] = []
    realign = 0
    for i, (start, stop) in enumerate(breaks):
        start += realign
        if i + 1 == len(breaks):
            if text[start:stop]:
                spans.append((start, stop))
            continue
        next_start, next_stop = breaks[i + 1]
        found = realignment.match(text[next_start:next_stop])
        if found:
            spans.append((start, next_start + len(found.group(0).rstrip())))
            realign = found.end()
        else:
            realign = 0
            if text[start:stop]:
                spans.append((start, stop))
    return spans


# Up to and including the last of the characters Punkt's _get_last_whitespace_index looks for.
_UP_TO_LAST_SPACE = re.compile(".*[" + re.escape(string.whitespace) + "]", re.DOTALL)


@load_once
def _punkt_patterns():
    """Punkt's candidate-boundary and realignment patterns, unguarded."""
    lang = _punkt()._lang_vars
    return (treebank.unguarded(lang.period_context_re()),
            treebank.unguarded(lang.re_boundary_realignment))


@load_once
def _punkt():
    """The tokenizer ``nltk.sent_tokenize`` uses (``PunktTokenizer("english")``), with its
    ``text_contains_sentbreak`` cached. That method decides one candidate boundary from the
    few words around it, a pure function of that context once the model is loaded, and it is
    three quarters of Punkt's time; the loose variants of a response share nearly all of their
    contexts. Its word splitter and token patterns are called without NLTK's ReDoS guard, as
    in ``treebank``."""
    ensure_punkt()
    from nltk.tokenize.punkt import PunktTokenizer

    tokenizer = PunktTokenizer("english")
    # Its word splitter and its token class's patterns, on this instance only, unguarded.
    lang = tokenizer._lang_vars
    lang._re_word_tokenizer = treebank.unguarded(lang._word_tokenizer_re())
    tokenizer._Token = type("UnguardedPunktToken", (tokenizer._Token,), {
        name: treebank.unguarded(getattr(tokenizer._Token, name))
        for name in ("_RE_ELLIPSIS", "_RE_NUMERIC", "_RE_INITIAL", "_RE_ALPHA")})
    tokenizer.text_contains_sentbreak = functools.lru_cache(maxsize=16384)(
        tokenizer.text_contains_sentbreak)
    return tokenizer


def nltk_words(text: str) -> tuple[str, ...]:
    """NLTK's ``word_tokenize``: the Treebank tokens of each Punkt sentence, in order.

    >>> nltk_words("Isn't it?")
    ('Is', "n't", 'it', '?')
    """
    return tuple(token for sentence in sentences(text) for token in sentence_words(sentence))


def first_words(text: str, n: int) -> list[str]:
    """The first ``n`` tokens of ``nltk_words(text)``, tokenizing only the sentences needed."""
    found: list[str] = []
    for sentence in sentences(text):
        found.extend(sentence_words(sentence))
        if len(found) >= n:
            break
    return found[:n]


def last_words(text: str, n: int) -> list[str]:
    """The last ``n`` tokens of ``nltk_words(text)`` (fewer if it has fewer), likewise."""
    found: list[str] = []
    for sentence in reversed(sentences(text)):
        found[:0] = sentence_words(sentence)
        if len(found) >= n:
            break
    return found[-n:] if n else []


@functools.lru_cache(maxsize=8192)
def sentence_words(sentence: str) -> tuple[str, ...]:
    """NLTK's Treebank tokens of one sentence. Cached per sentence: the loose variants of a
    response (without its first line, without '*') share most of their sentences."""
    return tuple(treebank.tokenize(sentence))


def clear_caches() -> None:
    """Forget every cached split (benchmarks call it so a response never finds another's)."""
    sentences.cache_clear()
    sentence_words.cache_clear()
    _punkt().text_contains_sentbreak.cache_clear()


def alnum_tokens(text: str) -> list[str]:
    """``nltk_words`` without the tokens that are only punctuation.

    >>> alnum_tokens("Hi, there -- you.")
    ['Hi', 'there', 'you']
    """
    return [token for token in nltk_words(text) if any(ch.isalnum() for ch in token)]


def ordinal(n: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``, ``11th``... for reasons.

    >>> [ordinal(n) for n in (1, 2, 3, 4, 11, 22)]
    ['1st', '2nd', '3rd', '4th', '11th', '22nd']
    """
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
