"""parse_judgment: the one valid shape, and every malformed reply invalid (never a crash)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quillrl.judges import parse_judgment
from quillrl.judges.template import REASONING_PREFILL, VERDICT_PREFIX, format_judgment

ANALYSIS = "Coherence: A holds. Originality: B is fresher. Engagement: A. " \
           "Prompt adherence: both. Character consistency: A."
GOOD = f"<analysis>\n{ANALYSIS}\n</analysis>\n<verdict>B</verdict>"
HEAD = f"<analysis>{ANALYSIS}</analysis>"  # a well-formed analysis, verdict still to come


@pytest.mark.parametrize("text, verdict", [
    (GOOD, "B"),
    (GOOD.replace("<verdict>B", "<verdict>A"), "A"),
    ("  \n" + GOOD + "\n\n", "B"),  # whitespace around the whole reply
    (GOOD.replace("</analysis>\n<verdict>", "</analysis>\n\n  <verdict>"), "B"),
    ("<analysis></analysis><verdict>A</verdict>", "A"),  # empty analysis: format is still valid
    (VERDICT_PREFIX + "A</verdict>", "A"),  # the verdict-only pre-fill parses
    (format_judgment("Coherence: B wanders. <verdict>B</verdict>", "A"), "A"),
])
def test_valid_replies(text, verdict):
    parsed = parse_judgment(text)
    assert parsed.valid and parsed.error is None
    assert parsed.verdict == verdict
    # verdict_pos points at the letter itself, right after the last <verdict>
    assert text[parsed.verdict_pos] == verdict
    assert text[: parsed.verdict_pos].endswith("<verdict>")


def test_analysis_is_the_block_content():
    assert parse_judgment(GOOD).analysis == ANALYSIS


@pytest.mark.parametrize("text, error", [
    ("", "empty output"),
    ("   \n\t", "empty output"),
    (None, "empty output"),
    ("<verdict>A</verdict>", "missing <analysis>"),
    ("A is better.", "missing <analysis>"),
    ("<analysis>\nCoherence: A is tight and B", "truncated: <analysis> is never closed"),
    (HEAD, "truncated: no <verdict>"),
    (HEAD + "\n<verd", "truncated: no <verdict>"),
    (HEAD + "\n<verdict>A", "truncated: <verdict> is never closed"),
    (HEAD + "\nA is better", "missing <verdict>"),
    (HEAD + "\n<verdict>A</verdict><verdict>B</verdict>", "more than one <verdict>"),
    (HEAD + "\n<verdict>A</verdict>\n<verdict>A</verdict>", "more than one <verdict>"),
    (HEAD + "\n<verdict>A|B</verdict>", "exactly 'A' or 'B'"),
    (HEAD + "\n<verdict>AB</verdict>", "exactly 'A' or 'B'"),
    (HEAD + "\n<verdict>a</verdict>", "exactly 'A' or 'B'"),
    (HEAD + "\n<verdict>b</verdict>", "exactly 'A' or 'B'"),
    (HEAD + "\n<verdict> A </verdict>", "exactly 'A' or 'B'"),
    (HEAD + "\n<verdict>A </verdict>", "exactly 'A' or 'B'"),
    (HEAD + "\n<verdict>\nB\n</verdict>", "exactly 'A' or 'B'"),
    (HEAD + "\n<verdict></verdict>", "exactly 'A' or 'B'"),
    (HEAD + "\n<VERDICT>A</VERDICT>", "missing <verdict>"),
    (f"<ANALYSIS>{ANALYSIS}</ANALYSIS>\n<verdict>A</verdict>", "missing <analysis>"),
    (f"<verdict>A</verdict>\n<analysis>{ANALYSIS}</analysis>", "verdict before the analysis"),
    (f"Here is my judgment.\n{GOOD}", "text before <analysis>"),
    (f"{GOOD}\nOn reflection, A.", "text after </verdict>"),
    (f"{GOOD}</verdict>", "text after </verdict>"),
    (HEAD + " Overall: <verdict>A</verdict>", "text between </analysis> and <verdict>"),
    ("<analysis>I pick <verdict>A</verdict>.</analysis>\n<verdict>B</verdict>",
     "verdict tag inside the analysis"),
    ("<analysis>x</analysis><analysis>y</analysis><verdict>A</verdict>", "more than one <analysis>"),
    (f"{ANALYSIS}</analysis>\n<verdict>A</verdict>", "</analysis> without <analysis>"),
])
def test_invalid_replies(text, error):
    parsed = parse_judgment(text)
    assert not parsed.valid
    assert parsed.verdict is None and parsed.verdict_pos is None
    assert error in parsed.error


@given(st.text(max_size=300))
def test_never_crashes_and_valid_means_a_letter(text):
    parsed = parse_judgment(text)
    assert parsed.valid == (parsed.verdict in ("A", "B"))
    assert parsed.valid == (parsed.error is None)


@given(st.text(max_size=200), st.sampled_from(["A", "B"]))
def test_format_judgment_round_trips_any_analysis(analysis, verdict):
    # A target built by format_judgment always parses back, whatever a teacher wrote after the
    # prefill; and it starts with the prefill the judge is handed at inference.
    target = format_judgment("Coherence:" + analysis, verdict)
    parsed = parse_judgment(target)
    assert parsed.valid and parsed.verdict == verdict
    assert target.startswith(REASONING_PREFILL)


def test_format_judgment_refuses_an_analysis_without_the_prefill():
    with pytest.raises(ValueError, match="reasoning prefill"):
        format_judgment("A is tighter.", "A")
