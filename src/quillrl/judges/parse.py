"""Read a GenRM reply: ``<analysis>...</analysis>`` then ``<verdict>A</verdict>`` (or ``B``).

The accepted grammar, after stripping whitespace around the whole reply::

    <analysis> ANALYSIS </analysis> WHITESPACE* <verdict>L</verdict>      with L in {A, B}

Everything else is *invalid*, with a one-line ``error``; parsing never raises. In particular:

* text before ``<analysis>`` or after ``</verdict>`` is invalid: a judge that keeps writing
  after its verdict may be taking it back, and format adherence is what the GenRM's format
  penalty trains;
* a ``<verdict>`` before ``</analysis>`` (before or inside the analysis) is invalid, and so is
  more than one verdict after it (both A and B, or the same letter twice): the verdict is the
  one and last ``<verdict>`` of the reply;
* the letter must be exactly ``A`` or ``B``: lower case (``a``), padding (``<verdict> A``) or
  anything else is invalid. The template asks for a single capital letter, and ``p(A)`` is read
  as the probability of the token ``A`` right after ``<verdict>``; a reply that put something
  else at that position did not answer with that token;
* tags are matched exactly and in lower case (``<VERDICT>`` is not a verdict tag);
* a reply cut off before ``</verdict>`` (length limit) is invalid ("truncated").

``verdict_pos`` is the character offset in the text given of the letter right after the final
``<verdict>``: prompt + ``text[:verdict_pos]`` is where the judge's ``p(A)`` is read.

Forcing the verdict (opt-in, ``force_verdict``; docs/design.md, "Forced verdict"). A reply that
wrote an analysis but never reached its verdict (cut off at the token limit, or closed the
analysis and went on in prose) can be *closed* by :func:`close_for_verdict`: its analysis up to
where it stopped, then ``\n</analysis>\n<verdict>``, and ``p(A)`` is read there, as a thinking
budget ends a reasoning model's thoughts. Such a judgment is valid but marked ``forced``, and
counted apart. Replies that broke the format in any other way (a verdict inside the analysis,
text before it, a second block, a verdict that is not exactly ``A`` or ``B``) are never forced:
forcing must not turn a malformed answer into a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import Verdict
from .template import ANALYSIS_CLOSE, ANALYSIS_OPEN, VERDICT_CHOICES, VERDICT_CLOSE, VERDICT_OPEN


@dataclass(frozen=True)
class ParsedJudgment:
    """A parsed GenRM reply; ``valid`` is False (and ``error`` says why) for anything malformed."""

    verdict: Verdict | None
    analysis: str | None
    valid: bool
    error: str | None = None
    verdict_pos: int | None = None
    forced: bool = False  # closed at the verdict position by close_for_verdict, not written


# The parser errors that mean "an analysis, but no verdict yet": the only ones forcing closes.
FORCEABLE_ERRORS = ("truncated: <analysis> is never closed",
                    "truncated: no <verdict> after </analysis>",
                    "missing <verdict> after </analysis>")


def _invalid(error: str, analysis: str | None = None) -> ParsedJudgment:
    return ParsedJudgment(verdict=None, analysis=analysis, valid=False, error=error)


def parse_judgment(text: str | None) -> ParsedJudgment:
    """Parse one judge reply (see the module docstring for what is valid).

    >>> parse_judgment("<analysis>\\nA is tighter.\\n</analysis>\\n<verdict>A</verdict>")
    ParsedJudgment(verdict='A', analysis='A is tighter.', valid=True, error=None, verdict_pos=46, forced=False)
    >>> parse_judgment("<verdict>B</verdict>").error
    'missing <analysis>...</analysis> block'
    """
    if text is None or not text.strip():
        return _invalid("empty output")
    start = len(text) - len(text.lstrip())
    body = text.strip()

    n_open, n_close = body.count(ANALYSIS_OPEN), body.count(ANALYSIS_CLOSE)
    if n_close == 0:
        if n_open:
            return _invalid("truncated: <analysis> is never closed")
        return _invalid("missing <analysis>...</analysis> block")
    if n_open == 0:
        return _invalid("</analysis> without <analysis>")
    if n_open > 1 or n_close > 1:
        return _invalid("more than one <analysis> block")
    if not body.startswith(ANALYSIS_OPEN):
        head = body[: body.index(ANALYSIS_OPEN)]
        if VERDICT_OPEN in head:
            return _invalid("verdict before the analysis")
        return _invalid("text before <analysis>")

    close_at = body.index(ANALYSIS_CLOSE)
    analysis = body[len(ANALYSIS_OPEN):close_at].strip()
    if VERDICT_OPEN in analysis or VERDICT_CLOSE in analysis:
        return _invalid("verdict tag inside the analysis", analysis)

    tail_at = close_at + len(ANALYSIS_CLOSE)
    tail = body[tail_at:]
    n_verdicts = tail.count(VERDICT_OPEN)
    if n_verdicts == 0:
        if tail.strip() == "" or VERDICT_OPEN.startswith(tail.strip()):
            return _invalid("truncated: no <verdict> after </analysis>", analysis)
        return _invalid("missing <verdict> after </analysis>", analysis)
    if n_verdicts > 1:
        return _invalid("more than one <verdict>", analysis)
    lead = tail[: tail.index(VERDICT_OPEN)]
    if lead.strip():
        return _invalid("text between </analysis> and <verdict>", analysis)

    letter_at = tail_at + len(lead) + len(VERDICT_OPEN)
    rest = body[letter_at:]
    if VERDICT_CLOSE not in rest:
        return _invalid("truncated: <verdict> is never closed", analysis)
    letter, after = rest.split(VERDICT_CLOSE, 1)
    if after.strip():
        return _invalid("text after </verdict>", analysis)
    if letter not in VERDICT_CHOICES:
        return _invalid(f"verdict must be exactly 'A' or 'B', got {letter!r}", analysis)
    return ParsedJudgment(verdict=letter, analysis=analysis, valid=True, error=None,
                          verdict_pos=start + letter_at)


def close_for_verdict(text: str, error: str | None) -> str | None:
    """``text`` (prefill + reply) closed at the verdict position, for a reply that wrote an
    analysis but no verdict; ``None`` when forcing does not apply.

    ``error`` is :func:`parse_judgment`'s error for ``text``; only :data:`FORCEABLE_ERRORS`
    are closed. The result is the analysis as far as it got (anything after its
    ``</analysis>`` dropped), then ``\n</analysis>\n<verdict>``, so the result + ``"A</verdict>"``
    parses as a valid judgment whose ``verdict_pos`` is ``len(result)``.

    >>> close_for_verdict("<analysis>\\nCoherence: A flows, B", "truncated: <analysis> is never closed")
    '<analysis>\\nCoherence: A flows, B\\n</analysis>\\n<verdict>'
    >>> close_for_verdict("<analysis>\\nok\\n</analysis>\\nThe answer is A.", "missing <verdict> after </analysis>")
    '<analysis>\\nok\\n</analysis>\\n<verdict>'
    >>> close_for_verdict("<verdict>A</verdict>", "missing <analysis>...</analysis> block") is None
    True
    """
    if error not in FORCEABLE_ERRORS:
        return None
    body = text.strip()
    if not body.startswith(ANALYSIS_OPEN):
        return None
    analysis = body[len(ANALYSIS_OPEN):].split(ANALYSIS_CLOSE, 1)[0]
    if any(tag in analysis for tag in (ANALYSIS_OPEN, VERDICT_OPEN, VERDICT_CLOSE)) or not analysis.strip():
        return None
    return f"{ANALYSIS_OPEN}{analysis.rstrip()}\n{ANALYSIS_CLOSE}\n{VERDICT_OPEN}"
