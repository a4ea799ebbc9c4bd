"""How the creative checks see a text: words, lines, stanzas, dialogue, narration.

One definition of each, shared by every check, so "a word" means the same thing when counting
words as when looking for forbidden ones. Definitions (docs/design.md, "Constraint verification"):

- a *word* is a run of letters or digits, with inner apostrophes or hyphens kept
  ("don't", "well-known" are one word each); matching is case-insensitive;
- a *line* is a non-empty line (whitespace-only lines do not count);
- a *stanza* is a block of lines separated by one or more blank lines;
- *dialogue* is text inside straight ("...") or curly (“...”) double quotes.
"""

from __future__ import annotations

import re

# Letters and digits ([^\W_]: \w without the underscore), joined by ' or - inside a word.
WORD = re.compile(r"[^\W_]+(?:['\-][^\W_]+)*")
# Straight quotes pair with straight ones, in order, and curly with curly; a pair must hold a
# letter or a digit to count, so an empty "" is not dialogue. (A lone straight quote, such as an
# inch mark, pairs with the next one: straight quotes cannot tell opening from closing.)
_QUOTED = re.compile(r'"[^"]*"|“[^”]*”')
_CURLY_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'"})


def normalize_apostrophes(text: str) -> str:
    """Curly apostrophes as straight ones, so "don’t" and "don't" are the same word.

    >>> normalize_apostrophes("don’t")
    "don't"
    """
    return text.translate(_CURLY_APOSTROPHES)


def words(text: str) -> list[str]:
    """The words of ``text`` in order.

    >>> words("Don’t stop -- well-known 42 times_two!")
    ["Don't", 'stop', 'well-known', '42', 'times', 'two']
    """
    return WORD.findall(normalize_apostrophes(text))


def lines(text: str) -> list[str]:
    """The non-empty lines of ``text``, stripped.

    >>> lines("a\\n  \\n b \\r\\nc\\n")
    ['a', 'b', 'c']
    """
    return [line.strip() for line in text.splitlines() if line.strip()]


def stanzas(text: str) -> list[list[str]]:
    """Blocks of non-empty lines separated by blank lines.

    >>> stanzas("a\\nb\\n\\n\\nc\\n \\nd")
    [['a', 'b'], ['c'], ['d']]
    """
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.strip():
            blocks[-1].append(line.strip())
        elif blocks[-1]:
            blocks.append([])
    return [block for block in blocks if block]


def dialogue(text: str) -> list[str]:
    """The quoted passages of ``text``, quotes included.

    >>> dialogue('He said “Run!” and "Hide," then "" fell.')
    ['“Run!”', '"Hide,"']
    """
    return [m for m in _QUOTED.findall(text) if any(c.isalnum() for c in m)]


def narration(text: str) -> str:
    """``text`` with its dialogue blanked out.

    >>> narration('I ran. "You lied," she said.')
    'I ran.   she said.'
    """
    return _QUOTED.sub(lambda m: " " if any(c.isalnum() for c in m.group()) else m.group(),
                       text)


def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """A case-insensitive pattern for ``phrase`` as whole words (any run of spaces between).

    >>> bool(phrase_pattern("cat").search("The Cat's toy"))
    True
    >>> bool(phrase_pattern("cat").search("concatenate"))
    False
    >>> bool(phrase_pattern("full  moon").search("a Full\\nMoon"))
    True
    """
    parts = [re.escape(part) for part in normalize_apostrophes(phrase).split()]
    return re.compile(r"(?<![^\W_])" + r"\s+".join(parts) + r"(?![^\W_])", re.IGNORECASE)


def count_phrase(phrase: str, text: str) -> int:
    """How many times ``phrase`` occurs in ``text`` as whole words, ignoring case."""
    return len(phrase_pattern(phrase).findall(normalize_apostrophes(text)))


def shorten(text: str, width: int = 40) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis, for reasons.

    >>> shorten("a\\nlong   line", 8)
    'a long…'
    """
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"
