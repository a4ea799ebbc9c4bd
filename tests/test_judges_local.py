"""Judges on a real transformers backend: the tiny random model (unit) and SmolLM2 (integration)."""

from __future__ import annotations

import pytest

from quillrl.backends.base import Backend, Generation
from quillrl.errors import ConfigError
from quillrl.judges import FreeTextVerifier, GenRMJudge, make_judge, parse_judgment
from quillrl.judges.stats import renormalise
from quillrl.judges.template import VERDICT_PREFIX, judge_prompt

PAIRS = [("Write about the sea.", "The sea was calm and grey.", "Waves. Gulls. A pier."),
         ("Write a haiku.", "Soft rain on the roof", "rain rain rain")]


@pytest.fixture(scope="module")
def tiny_backend(tiny_model_dir):
    from quillrl.backends.local import LocalBackend

    return LocalBackend(tiny_model_dir, device="cpu", batch_size=4)


class CannedReplies(Backend):
    """The real model's choice_probs, but a fixed reply instead of sampling (to pin the position)."""

    name = "canned"

    def __init__(self, inner: Backend, text: str):
        self.inner, self.text, self.usage = inner, text, inner.usage

    def generate(self, prompts, params):
        return [Generation(self.text, "stop") for _ in prompts]

    def choice_probs(self, prompts, choices):
        return self.inner.choice_probs(prompts, choices)


def test_verdict_mode_reads_the_backends_probabilities(tiny_backend):
    judgments = GenRMJudge(tiny_backend, mode="verdict", swap=True).compare_many(PAIRS)
    for (prompt, a, b), j in zip(PAIRS, judgments):
        assert j.valid and 0.0 <= j.p_a <= 1.0 and 0.0 <= j.entropy <= 1.0
        direct = tiny_backend.choice_probs([judge_prompt(prompt, a, b, "verdict"),
                                            judge_prompt(prompt, b, a, "verdict")], ["A", "B"])
        ab, ba = (renormalise(*row) for row in direct)
        assert j.orders[0].p_a == pytest.approx(ab, abs=1e-6)
        assert j.orders[1].p_a == pytest.approx(ba, abs=1e-6)
        assert j.p_a == pytest.approx((ab + 1 - ba) / 2, abs=1e-6)
        assert j.cost.prompt_tokens > 0  # read from the backend's usage counter


def test_reasoning_probe_is_the_same_position_as_verdict_mode(tiny_backend):
    # A reply identical to the verdict-only pre-fill must give the verdict-only p(A) exactly:
    # the probe continues the same chat, so both read the same tokens.
    canned = CannedReplies(tiny_backend, VERDICT_PREFIX + "B")
    reasoning = GenRMJudge(canned, mode="reasoning").compare_many(PAIRS)
    verdict = GenRMJudge(tiny_backend, mode="verdict").compare_many(PAIRS)
    for r, v in zip(reasoning, verdict):
        assert r.valid and r.verdict == "B"
        assert r.p_a == pytest.approx(v.p_a, abs=1e-6)


def test_reasoning_mode_generates_and_never_crashes(tiny_backend):
    judge = GenRMJudge(tiny_backend, mode="reasoning", max_new_tokens=8, seed=0)
    judgments = judge.compare_many(PAIRS)
    for j in judgments:
        assert isinstance(j.raw, str) and j.cost.completion_tokens > 0
        assert j.valid == parse_judgment(j.raw).valid  # a random model rarely writes the format
        assert (j.p_a is None) == (not j.valid)
    assert judge.usage.judgments == 2 and judge.usage.invalid == sum(not j.valid for j in judgments)


def test_free_text_verifier_on_a_model(tiny_backend):
    results = FreeTextVerifier(tiny_backend).check_many(
        [("The sea was calm.", "Mention the sea.", None), ("No.", "Use at least 10 words.", "p")])
    for r in results:
        assert r.passed in (True, False) and 0.0 <= r.p_yes <= 1.0
        assert r.passed == (r.p_yes >= 0.5)


def test_make_judge_builds_a_genrm_on_a_backend_spec(tiny_model_dir):
    from quillrl.backends.local import LocalBackend
    from quillrl.backends.openai_compat import OpenAIBackend

    judge = make_judge(f"genrm:local:{tiny_model_dir}", mode="verdict", swap=True,
                       backend_options={"device": "cpu", "batch_size": 2}, seed=1)
    assert isinstance(judge, GenRMJudge) and isinstance(judge.backend, LocalBackend)
    assert (judge.mode, judge.swap, judge.backend.batch_size, judge.params.seed) == ("verdict", True, 2, 1)
    assert judge.compare(*PAIRS[0]).valid
    with make_judge("genrm:openai:http://127.0.0.1:9/v1#judge-model") as remote:  # no request made
        assert isinstance(remote.backend, OpenAIBackend) and remote.backend.model == "judge-model"
        assert remote.name == "genrm:openai:http://127.0.0.1:9/v1#judge-model"
    with pytest.raises(ConfigError, match="unknown option.*max_new_tokens"):
        make_judge(f"genrm:local:{tiny_model_dir}", max_tokens=5)
    with pytest.raises(ConfigError, match="accepted forms"):
        make_judge("genrm:gpt4")  # the backend's own error lists its forms


@pytest.mark.integration
def test_embedded_model_verdict_mode_puts_mass_on_the_letters():
    judge = make_judge("genrm:local:smollm2-135m-instruct", mode="verdict",
                       backend_options={"device": "cpu"})
    j = judge.compare(*PAIRS[0])
    assert j.valid and 0.0 < j.p_a < 1.0 and j.verdict in ("A", "B")
    # The pre-fill leaves the model at the verdict letter: A and B carry real probability
    # (about 0.1 for the untrained 135M model; a wrong position gives orders of magnitude less).
    assert j.orders[0].mass > 0.01
    raw = judge.backend.choice_probs([judge_prompt(*PAIRS[0], "verdict")], ["A", "B"])
    assert j.orders[0].mass == pytest.approx(raw[0].sum(), rel=1e-5)
    assert j.orders[0].p_a == pytest.approx(raw[0][0] / raw[0].sum(), rel=1e-5)
