"""ScalarRMJudge on a tiny random Bradley-Terry model built here; batching must not change scores."""

from __future__ import annotations

import math

import pytest

from quillrl.errors import ConfigError, ModelNotFoundError
from quillrl.judges import ScalarRMJudge, make_judge
from quillrl.judges.scalar import format_for_rm, sigmoid

PROMPT = "Write about the sea."
TEXTS = ["The sea was calm.", "Waves rose over the old pier and the gulls went quiet.",
         "Once upon a time a fox wrote a story about the sea.", "No."]


def _build(directory, num_labels=1):
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from quillrl.testing import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         num_labels=num_labels, pad_token_id=tok.pad_token_id,
                         eos_token_id=tok.eos_token_id, bos_token_id=None)
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(config)
    with torch.no_grad():  # a random head is near zero; widen it so rewards differ clearly
        model.score.weight.normal_(0, 1.0)
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("tiny-rm"))


@pytest.fixture(scope="module")
def judge(rm_dir):
    return ScalarRMJudge(rm_dir, batch_size=8)


def test_batched_scores_equal_one_at_a_time(rm_dir, judge):
    batched = judge.score([PROMPT] * len(TEXTS), TEXTS)
    single = ScalarRMJudge(rm_dir, batch_size=1).score([PROMPT] * len(TEXTS), TEXTS)
    assert batched.shape == (len(TEXTS),)
    assert batched == pytest.approx(single, abs=1e-4)  # padding must not move the read position
    assert len(set(batched.round(4))) == len(TEXTS)  # different texts, different rewards


def test_p_a_is_sigmoid_of_the_reward_gap(judge):
    r = judge.score([PROMPT] * 2, TEXTS[:2])
    j = judge.compare(PROMPT, TEXTS[0], TEXTS[1])
    assert j.p_a == pytest.approx(1 / (1 + math.exp(-(r[0] - r[1]))), abs=1e-6)
    assert j.extra["r_a"] == pytest.approx(r[0], abs=1e-5)
    assert j.verdict == ("A" if r[0] > r[1] else "B")
    assert j.entropy is not None and j.valid and j.raw.startswith("r_A=")
    flipped = judge.compare(PROMPT, TEXTS[1], TEXTS[0])
    assert j.p_a + flipped.p_a == pytest.approx(1.0, abs=1e-6)


def test_identical_candidates_tie(judge):
    j = judge.compare(PROMPT, TEXTS[0], TEXTS[0])
    assert j.p_a == pytest.approx(0.5) and j.verdict is None


def test_compare_many_scores_each_text_once_in_one_pass(judge):
    pairs = [(PROMPT, TEXTS[0], TEXTS[1]), (PROMPT, TEXTS[1], TEXTS[2]), (PROMPT, TEXTS[2], TEXTS[0])]
    judgments = judge.compare_many(pairs)
    # three distinct (prompt, text) inputs fit one batch of 8: one forward pass in all
    assert sum(j.cost.backend_calls for j in judgments) == pytest.approx(1.0)
    assert [j.p_a for j in judgments] == [pytest.approx(judge.compare(*p).p_a, abs=1e-5) for p in pairs]


def test_make_judge_loads_by_path(rm_dir):
    j = make_judge(f"scalar:{rm_dir}")
    assert isinstance(j, ScalarRMJudge) and j.name == f"scalar:{rm_dir}"


def test_rm_input_is_the_chat_the_policy_saw(judge):
    text = format_for_rm(judge.tokenizer, PROMPT, TEXTS[0])
    user_at = text.index("<|im_start|>user\nWrite about the sea.")
    assert user_at < text.index("<|im_start|>assistant\nThe sea was calm.")


def test_wrong_models_raise_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="num_labels=1"):
        ScalarRMJudge(_build(tmp_path / "two", num_labels=2))
    with pytest.raises(ModelNotFoundError, match="config.json"):
        ScalarRMJudge(tmp_path / "missing")
    with pytest.raises(ConfigError, match="model directory"):
        ScalarRMJudge()


@pytest.mark.parametrize("x, y", [(0.0, 0.5), (800.0, 1.0), (-800.0, 0.0)])
def test_sigmoid_is_safe_at_extremes(x, y):
    assert sigmoid(x) == pytest.approx(y)


def test_long_responses_are_cut_from_the_back_the_same_in_training_and_judging(rm_dir):
    from quillrl.judges.scalar import rm_input_ids
    from quillrl.models import load_tokenizer

    tok = load_tokenizer(rm_dir)
    story = "The knight walked home; the moon was bright and the road was long. " * 30
    full, cut = rm_input_ids(tok, PROMPT, story)
    assert not cut
    ids, cut = rm_input_ids(tok, PROMPT, story, max_length=120)
    assert cut and len(ids) <= 120 and len(ids) < len(full)
    text = tok.decode(ids)
    opening, closing = format_for_rm(tok, PROMPT, "X").split("X")
    # the prompt and the story's opening are kept, and the template closes the turn as usual
    assert text.startswith(opening + "The knight walked home") and text.endswith(closing)
    assert rm_input_ids(tok, PROMPT, "short", max_length=120) == (rm_input_ids(tok, PROMPT, "short")[0], False)
    with pytest.raises(ConfigError, match="no room for the response"):
        rm_input_ids(tok, PROMPT * 40, story, max_length=20)
    # the judge reads exactly those tokens: its score of the long story is that of the cut story
    cut_story = text[len(opening): len(text) - len(closing)]
    assert ScalarRMJudge(rm_dir, max_length=120).score([PROMPT], [story])[0] == pytest.approx(
        ScalarRMJudge(rm_dir).score([PROMPT], [cut_story])[0], abs=1e-5)


def test_a_model_trained_with_truncation_is_judged_with_it(tmp_path):
    from quillrl.judges.scalar import write_rm_settings

    trained = _build(tmp_path / "rm")
    write_rm_settings(trained, max_length=64)
    assert ScalarRMJudge(trained).max_length == 64 and ScalarRMJudge(trained, max_length=99).max_length == 99
