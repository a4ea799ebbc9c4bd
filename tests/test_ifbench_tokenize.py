"""Our faster sentence and word splits (docs/design.md, "IFBench check speed") against NLTK's own
``sent_tokenize`` and ``word_tokenize``, on real texts: every loose variant of IFBench's sample
responses and of GPT-4's IFEval responses, as written, lowercased, and with '/' read as a space
(the forms the checks split)."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def real_texts(shared_data) -> list[str]:
    from quillrl.constraints import loose_variants

    responses = [json.loads(line)["response"]
                 for line in (shared_data / "ifbench" / "sample_output.jsonl").open()]
    gpt4 = shared_data / "ifeval" / "input_response_data_gpt4_20231107_145030.jsonl"
    responses += [json.loads(line)["response"] for line in gpt4.open()]
    texts = {v for r in responses for _, v in loose_variants(r)}
    texts |= {t.lower() for t in texts} | {t.replace("/", " ").lower() for t in texts}
    return sorted(texts)


def test_sentence_split_equals_nltk_sent_tokenize(real_texts):
    import nltk

    from quillrl.constraints.ifbench import text

    assert len(real_texts) > 6000
    text.clear_caches()
    different = [t for t in real_texts if list(text.sentences(t)) != nltk.sent_tokenize(t)]
    assert different == []


def test_word_split_equals_nltk_word_tokenize(real_texts):
    import nltk

    from quillrl.constraints.ifbench import text

    text.clear_caches()
    different = [t for t in real_texts if list(text.nltk_words(t)) != nltk.word_tokenize(t)]
    assert different == []
    assert sum(map(len, map(text.nltk_words, real_texts))) > 1_000_000


@pytest.mark.parametrize("sample", [
    "", "   ", "\n", "a", " x. Y", "Hi.  (Yes.) No!) Fine...", "Mr. Smith went. \"Quoted.\" Then",
    "One.\tTwo?\x0bThree!\x0cFour.\rFive", "x.\n\ny. z", "...", ". . .", "Ends with space. ",
    "«Bonjour.» “Done.” ‘Yes.’ (a) [b] {c} <d> -- e — f", "don't can't 'tis gonna wanna",
    "Wait!! !Now. ok", "x.\t.y. z", "1. 2. 3.", " . . .", "a. .b. C", "Hi!\n!Yes? ?no. Ok",
    "a.\u00a0B. c\u2003D. e", "DON'T CANNOT 'TIS Gimme LEMME More'n", "He said \"no.\" She left.",
])
def test_edge_texts_equal_nltk(sample):
    import nltk

    from quillrl.constraints.ifbench import text

    text.clear_caches()
    assert list(text.sentences(sample)) == nltk.sent_tokenize(sample)
    assert list(text.nltk_words(sample)) == nltk.word_tokenize(sample)
