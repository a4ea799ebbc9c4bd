"""Parsing English length requirements into word ranges (WritingBench importer)."""

from __future__ import annotations

import pytest

from quillrl.data.lengths import about, parse_word_requirement


@pytest.mark.parametrize("text, expected", [
    ("Write an essay of about 800 words.", (640, 960)),
    ("Around 800 words", (640, 960)),
    ("Please write a 2500-word briefing.", (2000, 3000)),
    ("a nostalgic essay, 1200 words", (960, 1440)),
    ("The length should be between 1000 and 1500 words.", (1000, 1500)),
    ("with a word count requirement of 2000-2500 words.", (2000, 2500)),
    ("Suggested word count: 3,000–5,000 words", (3000, 5000)),
    ("Please help me write a 150-200 word comment", (150, 200)),
    ("approximately 1,200-1,500 words", (1200, 1500)),
    ("Keep it to no more than 500 words.", (None, 500)),
    ("The speech should not exceed 1,800 words.", (None, 1800)),
    ("an abstract within 250 words", (None, 250)),
    ("with the text limited to 1000 words", (None, 1000)),
    ("a report of no less than 3000 words", (3000, None)),
    ("The article should be no less than 8,000 words", (8000, None)),
    ("an engineering report of over 3,000 words", (3000, None)),
    ("recommended minimum 50 words", (50, None)),
    ("a detailed teaching plan (over 2000 words) for", (2000, None)),
])
def test_whole_response_requirements(text, expected):
    found = parse_word_requirement(text)
    assert found is not None
    assert (found.min_words, found.max_words) == expected


@pytest.mark.parametrize("text, expected", [
    # A total wins over per-part statements, wherever it comes.
    ("Each section should be around 2000 words, with the total text exceeding 6000 words",
     (6000, None)),
    ("- Keep discussion length between 2000-2500 words per novel\n- Total length: 8000-10000 "
     "words", (8000, 10000)),
    ("with approximately 1,000 words per section, totaling 3,000 words", (2400, 3600)),
    # Per-part statements are ignored when there is a whole-response one.
    ("Write a biography of 3000-3500 words. Include introductory and concluding sections of "
     "about 200 words each.", (3000, 3500)),
    # An "each" later in the clause is about something else.
    ("Write a 200-250 word promotional copy, adding emojis for each section", (200, 250)),
])
def test_totals_and_parts(text, expected):
    found = parse_word_requirement(text)
    assert (found.min_words, found.max_words) == expected


@pytest.mark.parametrize("text", [
    "Write a haiku about rain.",
    "Each slogan should be 15-20 words, highlighting the product.",
    "Please help me write several 200-word restaurant reviews.",
    "The article length needs to increase by 300-500 words.",
    "Create a 25-second promotional video script.",
    "Main slogan should not exceed 12 characters.",
])
def test_no_whole_response_requirement(text):
    assert parse_word_requirement(text) is None


def test_kwargs_and_about():
    assert parse_word_requirement("at most 300 words").kwargs() == {"max_words": 300}
    assert parse_word_requirement("300-500 words").kwargs() == {"min_words": 300,
                                                                "max_words": 500}
    assert about(230) == (184, 276)
    assert about(1000, tolerance=0.1) == (900, 1100)
