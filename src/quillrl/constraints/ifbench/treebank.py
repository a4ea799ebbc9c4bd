"""NLTK's Treebank word tokenizer (``NLTKWordTokenizer.tokenize``, what ``nltk.word_tokenize``
runs on each Punkt sentence), faster and token for token the same.

It is a chain of regex substitutions, most of which find nothing in a given sentence. We run
NLTK's own compiled patterns, in its order, and skip a step when the text in hand (after the
steps before it) contains none of the substrings its pattern cannot match without: a
substitution that matches nothing returns its input, so skipping it changes nothing. A pattern
this table does not know (another NLTK version) always runs. The patterns are also called
without NLTK's ReDoS guard (``nltk.redos.TimedPattern``, whose per-call timeout is half the cost
of a short match): they are NLTK's fixed tokenizer patterns, never a caller's. See
docs/design.md, "IFBench check speed"; tests/test_ifbench_tokenize.py compares the tokens with
``nltk.word_tokenize``'s on every loose variant of IFBench's and IFEval's responses.
"""

from __future__ import annotations

import re

from ..lazy import load_once

# NLTK's pattern -> substrings at least one of which any match contains (None: always run).
NEEDS: dict[str, tuple[str, ...] | None] = {
    "([«“‘„]|[`]+)": ("«", "“", "‘", "„", "`"),
    '^\\"': ('"',),
    "(``)": ("``",),
    '([ \\(\\[{<])(\\"|\\\'{2})': ('"', "''"),
    "(?i)(?<!\\w)(\\')(?!(?:re|ve|ll|m|t|s|d|n)\\b)(?=\\w)": ("'",),
    '([^\\.])(\\.)([\\]\\)}>"\\\'»”’ ]*+)\\s*$': (".",),
    "([:,])([^\\d])": (":", ","),
    "([:,])$": (":", ","),
    "\\.{2,}": ("..",),
    "[;@#$%&]": tuple(";@#$%&"),
    "[\\u2012-\\u2015]": ("\u2012", "\u2013", "\u2014", "\u2015"),
    '([^\\.])(\\.)([\\]\\)}>"\\\']*)\\s*$': (".",),
    "[?!]": ("?", "!"),
    "([^'])' ": ("' ",),
    "[*]": ("*",),
    "[\\]\\[\\(\\)\\{\\}\\<\\>]": tuple("][(){}<>"),
    "--": ("--",),
    "([»”’])": ("»", "”", "’"),
    "''": ("''",),
    '"': ('"',),
    "([^' ])('[sS]|'[mM]|'[dD]|') ": ("'s ", "'S ", "'m ", "'M ", "'d ", "'D ", "' "),
    "([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ": (
        "'ll ", "'LL ", "'re ", "'RE ", "'ve ", "'VE ", "n't ", "N'T "),
}

# MacIntyre's contractions (case-insensitive): one of these is in the lowercased text of any
# match ('mme' for gimme/lemme and "'t" for 'tis/'twas avoid i and s, which case-insensitive
# matching also finds as 'ı' and 'ſ', letters that lower() keeps).
CONTRACTIONS = (
    "(?i)\\b(can)(?#X)(not)\\b", "(?i)\\b(d)(?#X)('ye)\\b", "(?i)\\b(gim)(?#X)(me)\\b",
    "(?i)\\b(gon)(?#X)(na)\\b", "(?i)\\b(got)(?#X)(ta)\\b", "(?i)\\b(lem)(?#X)(me)\\b",
    "(?i)\\b(more)(?#X)('n)\\b", "(?i)\\b(wan)(?#X)(na)(?=\\s)",
    "(?i) ('t)(?#X)(is)\\b", "(?i) ('t)(?#X)(was)\\b",
)
CONTRACTION_NEEDS = ("cannot", "d'ye", "mme", "gonna", "gotta", "more'n", "wanna", "'t")


def unguarded(pattern):
    """The compiled pattern inside NLTK's ReDoS guard (`nltk.redos.TimedPattern`), or the pattern
    itself: calling it directly skips the guard's per-call timeout."""
    return getattr(pattern, "_rx", pattern)


def _steps(pairs) -> list[tuple]:
    """(pattern, substitution, needed, search): ``needed`` is None (always run), one substring
    (tested with ``in``) or several (tested with ``search``, a pattern of them all)."""
    steps = []
    for p, sub in pairs:
        pattern = unguarded(p)
        needs = NEEDS.get(pattern.pattern)
        if needs is None or len(needs) == 1:
            steps.append((pattern, sub, needs and needs[0], None))
        else:
            steps.append((pattern, sub, needs, re.compile("|".join(map(re.escape, needs))).search))
    return steps


@load_once
def _plan():
    """NLTKWordTokenizer's steps as ``tokenize`` runs them (no parentheses conversion)."""
    from nltk.tokenize.destructive import NLTKWordTokenizer as tok

    before_pad = _steps(tok.STARTING_QUOTES + tok.PUNCTUATION
                        + [tok.PARENS_BRACKETS, tok.DOUBLE_DASHES])
    after_pad = _steps(tok.ENDING_QUOTES)
    contractions = [unguarded(p) for p in tok.CONTRACTIONS2 + tok.CONTRACTIONS3]
    known = tuple(p.pattern for p in contractions) == CONTRACTIONS
    return before_pad, after_pad, contractions, CONTRACTION_NEEDS if known else None


def _run(steps, text: str) -> str:
    for pattern, sub, needed, search in steps:
        if needed is None or (needed in text if search is None else search(text)):
            text = pattern.sub(sub, text)
    return text


def tokenize(sentence: str) -> list[str]:
    """``NLTKWordTokenizer().tokenize(sentence)``.

    >>> tokenize('"Isn\\'t it," she said (twice).')
    ['``', 'Is', "n't", 'it', ',', "''", 'she', 'said', '(', 'twice', ')', '.']
    """
    before_pad, after_pad, contractions, contraction_needs = _plan()
    text = " " + _run(before_pad, sentence) + " "
    text = _run(after_pad, text)
    lowered = text.lower()
    if contraction_needs is None or any(n in lowered for n in contraction_needs):
        for pattern in contractions:
            text = pattern.sub(r" \1 \2 ", text)
    return text.split()
