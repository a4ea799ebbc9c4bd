"""Length and random baselines, and make_judge's spec parsing."""

from __future__ import annotations

import pytest

from quillrl.errors import ConfigError
from quillrl.judges import Judge, LengthJudge, RandomJudge, make_judge


@pytest.mark.parametrize("a, b, p, verdict", [
    ("one two three", "one two", 1.0, "A"),
    ("one", "one two", 0.0, "B"),
    ("one two", "three four", 0.5, None),        # a tie is 0.5, no winner
    ("one, two!", "one two", 0.5, None),         # punctuation is not a word
    ("  spaced \n\n out  ", "spaced out", 0.5, None),
    ("", "", 0.5, None),
])
def test_length_judge(a, b, p, verdict):
    j = LengthJudge().compare("prompt", a, b)
    assert (j.p_a, j.verdict, j.valid) == (p, verdict, True)
    assert j.entropy == (1.0 if p == 0.5 else 0.0)
    assert j.extra == {"words_a": len(a.split()), "words_b": len(b.split())}


def test_random_judge_is_reproducible_and_seeded():
    pairs = [("p", f"story {i}", f"other {i}") for i in range(50)]
    first = [j.p_a for j in RandomJudge(7).compare_many(pairs)]
    assert first == [j.p_a for j in RandomJudge(7).compare_many(pairs)]
    # independent of batching and of call order
    assert first[::-1] == [RandomJudge(7).compare(*p).p_a for p in pairs[::-1]]
    assert first != [j.p_a for j in RandomJudge(8).compare_many(pairs)]
    assert all(0.0 <= p < 1.0 for p in first)
    assert 0.3 < sum(p > 0.5 for p in first) / len(first) < 0.7
    # field boundaries count: ("ab", "c") is not ("a", "bc")
    assert RandomJudge(7).compare("p", "ab", "c").p_a != RandomJudge(7).compare("p", "a", "bc").p_a


@pytest.mark.parametrize("spec, cls, name", [
    ("baseline:length", LengthJudge, "baseline:length"),
    ("baseline:random", RandomJudge, "baseline:random:0"),
    ("baseline:random:42", RandomJudge, "baseline:random:42"),
])
def test_make_judge_baselines(spec, cls, name):
    judge = make_judge(spec, mode="verdict", swap=True)  # ignored: order-free judges
    assert isinstance(judge, cls) and isinstance(judge, Judge) and judge.name == name


@pytest.mark.parametrize("spec, why", [
    ("", "unknown judge kind"),
    ("llm:gpt", "unknown judge kind"),
    ("baseline:longest", "unknown baseline"),
    ("baseline:length:3", "unknown baseline"),
    ("baseline:random:x", "must be an integer"),
    ("genrm", "needs a backend spec"),
    ("scalar:", "needs a model directory"),
])
def test_make_judge_errors_list_the_accepted_forms(spec, why):
    with pytest.raises(ConfigError) as err:
        make_judge(spec)
    message = str(err.value)
    assert why in message
    for form in ("genrm:<backend spec>", "scalar:<path", "baseline:length", "baseline:random[:seed]"):
        assert form in message


def test_usage_counts_every_judgment():
    judge = LengthJudge()
    judge.compare_many([("p", "a b", "c"), ("p", "a", "b")])
    judge.compare("p", "a", "b c")
    assert judge.usage.judgments == 3 and judge.usage.invalid == 0
