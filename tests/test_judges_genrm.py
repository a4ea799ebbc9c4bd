"""GenRMJudge against a fake backend: batching, p(A), swap debiasing, invalid handling, cost."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pytest

from quillrl.backends.base import Backend, ChatPrompt, Generation, SamplingParams, UsageCounter
from quillrl.errors import BackendError, ConfigError
from quillrl.judges import GenRMJudge, binary_entropy, position_consistency
from quillrl.judges.template import REASONING_PREFILL, VERDICT_PREFIX

GOOD, BAD = "A vivid, well-built story.", "a story"


def slot_a(prompt: ChatPrompt) -> str:
    """The candidate the judge sees in slot A."""
    return prompt.messages[1]["content"].split("<candidate_a>\n", 1)[1].split("\n</candidate_a>", 1)[0]


def reply(letter: str) -> str:
    # The judge continues the reasoning prefill "<analysis>\nCoherence:"; servers drop the stop
    # string, so the reply ends right after the letter.
    return f" one holds together.\n</analysis>\n<verdict>{letter}"


class FakeBackend(Backend):
    """A backend made of two functions (httpx MockTransport style), recording every call."""

    name = "fake"

    def __init__(self, probs: Callable[[ChatPrompt], tuple[float, float]] | None = None,
                 text: Callable[[ChatPrompt], str | Generation] | None = None):
        self.probs = probs or (lambda p: (0.5, 0.5))
        self.text = text or (lambda p: reply("A"))
        self.calls: list[tuple[str, list]] = []
        self.params: list[SamplingParams] = []
        self.usage = UsageCounter()

    def generate(self, prompts: Sequence[ChatPrompt], params: SamplingParams) -> list[Generation]:
        self.calls.append(("generate", list(prompts)))
        self.params.append(params)
        out = []
        for p in prompts:
            g = self.text(p)
            out.append(g if isinstance(g, Generation) else
                       Generation(text=g, finish_reason="stop", prompt_tokens=100,
                                  completion_tokens=len(g.split())))
        return out

    def choice_probs(self, prompts: Sequence[ChatPrompt], choices: Sequence[str]) -> np.ndarray:
        assert tuple(choices) == ("A", "B")
        self.calls.append(("choice_probs", list(prompts)))
        self.usage.prompt_tokens += 7 * len(prompts)
        return np.array([self.probs(p) for p in prompts], dtype=float)

    def kinds(self) -> list[tuple[str, int]]:
        return [(kind, len(prompts)) for kind, prompts in self.calls]


def prefers_good(p_good: float = 0.9, mass: float = 1.0):
    """A position-free judge: P(slot A) is p_good when the good story is in slot A."""
    def probs(prompt):
        p = p_good if slot_a(prompt) == GOOD else 1.0 - p_good
        return (mass * p, mass * (1.0 - p))
    return probs


PAIRS = [("Write about the sea.", GOOD, BAD), ("Write about a fox.", BAD, GOOD),
         ("Write about rain.", GOOD, BAD)]


def test_verdict_mode_is_one_choice_probs_call_without_generation():
    backend = FakeBackend(probs=lambda p: (0.3, 0.1))
    judgments = GenRMJudge(backend, mode="verdict").compare_many(PAIRS)
    assert backend.kinds() == [("choice_probs", 3)]
    assert all(p.assistant_prefix == VERDICT_PREFIX for p in backend.calls[0][1])
    for j in judgments:
        assert j.valid and j.p_a == pytest.approx(0.75) and j.verdict == "A"
        assert j.entropy == pytest.approx(binary_entropy(0.75))
        assert j.orders[0].mass == pytest.approx(0.4)
        assert j.raw == "P(A)=0.3 P(B)=0.1"


def test_verdict_mode_swap_is_still_one_call_with_both_orders():
    backend = FakeBackend(probs=prefers_good(0.9))
    judgments = GenRMJudge(backend, mode="verdict", swap=True).compare_many(PAIRS)
    assert backend.kinds() == [("choice_probs", 6)]
    # AB order then BA order for each pair: the slots alternate between the two stories.
    slots = [slot_a(p) for p in backend.calls[0][1]]
    assert slots == [GOOD, BAD, BAD, GOOD, GOOD, BAD]
    for (_, a, _), j in zip(PAIRS, judgments):
        assert j.p_a == pytest.approx(0.9 if a == GOOD else 0.1)  # (0.9 + 1 - 0.1) / 2
        assert j.verdict == ("A" if a == GOOD else "B")
        assert [o.order for o in j.orders] == ["AB", "BA"]
        assert j.flipped is False
    assert position_consistency(j.flipped for j in judgments) == 1.0


def test_pure_position_bias_debiases_to_a_tie_and_flips():
    backend = FakeBackend(probs=lambda p: (0.8, 0.2))  # always says "slot A"
    j = GenRMJudge(backend, mode="verdict", swap=True).compare("p", GOOD, BAD)
    assert j.p_a == pytest.approx(0.5) and j.verdict is None and j.valid
    assert j.entropy == pytest.approx(1.0)
    assert j.flipped is True
    assert [o.verdict for o in j.orders] == ["A", "A"]
    assert [o.p_a for o in j.orders] == [pytest.approx(0.8), pytest.approx(0.8)]


def test_swap_arithmetic_with_disagreeing_orders():
    # AB: p(slot A)=0.6; BA: p(slot A)=0.7, i.e. 0.3 for the original A. Mean 0.45: B wins.
    backend = FakeBackend(probs=lambda p: (0.6, 0.4) if slot_a(p) == GOOD else (0.7, 0.3))
    j = GenRMJudge(backend, mode="verdict", swap=True).compare("p", GOOD, BAD)
    assert j.p_a == pytest.approx(0.45) and j.verdict == "B"
    assert j.flipped is True  # AB crowned GOOD, BA crowned BAD


def test_reasoning_mode_is_one_generate_then_one_choice_probs():
    backend = FakeBackend(probs=prefers_good(0.8),
                          text=lambda p: reply("A" if slot_a(p) == GOOD else "B"))
    judge = GenRMJudge(backend, mode="reasoning", swap=True, max_new_tokens=64,
                       temperature=0.7, seed=3)
    judgments = judge.compare_many(PAIRS)
    assert backend.kinds() == [("generate", 6), ("choice_probs", 6)]
    assert backend.params == [SamplingParams(max_new_tokens=64, temperature=0.7, seed=3,
                                             stop=("</verdict>",))]
    gen_prompts, probe_prompts = backend.calls[0][1], backend.calls[1][1]
    assert all(p.assistant_prefix == REASONING_PREFILL for p in gen_prompts)
    for gen_prompt, probe in zip(gen_prompts, probe_prompts):
        # p(A) is read on the same chat, continued with the judge's reply up to <verdict>.
        assert probe.messages == gen_prompt.messages
        assert probe.assistant_prefix.startswith(REASONING_PREFILL + reply("A")[:5])
        assert probe.assistant_prefix.endswith("</analysis>\n<verdict>")
    for (_, a, _), j in zip(PAIRS, judgments):
        assert j.valid and j.p_a == pytest.approx(0.8 if a == GOOD else 0.2)
        assert j.analysis == "Coherence: one holds together."
        assert j.raw == reply("A" if a == GOOD else "B")  # as the backend returned it
        assert j.flipped is False


def test_written_letter_is_the_verdict_even_when_p_disagrees():
    # Sampling can write B while the model leaned A: the verdict is what it wrote, p(A) what it felt.
    backend = FakeBackend(probs=lambda p: (0.6, 0.4), text=lambda p: reply("B"))
    j = GenRMJudge(backend, temperature=1.0).compare("p", GOOD, BAD)
    assert j.verdict == "B" and j.p_a == pytest.approx(0.6)


def test_invalid_replies_are_counted_and_not_probed():
    texts = {GOOD: reply("A"), BAD: "I think A is better."}
    backend = FakeBackend(probs=lambda p: (0.9, 0.1), text=lambda p: texts[slot_a(p)])
    judge = GenRMJudge(backend)
    judgments = judge.compare_many(PAIRS)
    assert backend.kinds() == [("generate", 3), ("choice_probs", 2)]
    bad = judgments[1]
    assert not bad.valid and bad.p_a is None and bad.verdict is None and bad.entropy is None
    # prefill + reply is read as one judgment: the analysis was opened and never closed
    assert "truncated: <analysis> is never closed" in bad.error and bad.raw == "I think A is better."
    assert judge.usage.judgments == 3 and judge.usage.invalid == 1
    assert judge.usage.invalid_rate == pytest.approx(1 / 3)


def test_all_invalid_makes_no_choice_probs_call():
    backend = FakeBackend(text=lambda p: "")
    judgments = GenRMJudge(backend).compare_many(PAIRS)
    assert backend.kinds() == [("generate", 3)]
    assert all(not j.valid and j.error == "order AB: empty output" for j in judgments)


def test_swap_with_one_invalid_order_invalidates_the_judgment_but_keeps_the_other():
    texts = {GOOD: reply("A"), BAD: reply("a")}  # lower-case letter when BAD is in slot A
    backend = FakeBackend(probs=lambda p: (0.9, 0.1), text=lambda p: texts[slot_a(p)])
    j = GenRMJudge(backend, swap=True).compare("p", GOOD, BAD)
    assert not j.valid and j.p_a is None and j.flipped is None
    assert j.error.startswith("order BA: verdict must be exactly 'A' or 'B'")
    ab, ba = j.orders
    assert ab.valid and ab.p_a == pytest.approx(0.9) and not ba.valid


@pytest.mark.parametrize("gen, valid", [
    (Generation(reply("A"), "stop"), True),                    # server dropped the stop string
    (Generation(reply("A") + "</verdict>", "stop"), True),     # local kept it
    (Generation(reply("A") + "  \n", "stop"), True),
    (Generation(reply("A"), "length"), False),                 # cut off: never completed for it
    (Generation(" A flows, B", "length"), False),               # prefill + cut-off reply
    # a server that could not continue the prefill restates it: the reply is read alone
    (Generation("<analysis>\nCoherence: ok\n</analysis>\n<verdict>A", "stop"), True),
    (Generation("<analysis>\nCoherence", "length"), False),
    (Generation(reply("A") + "</verdict> and more", "stop"), False),
])
def test_stop_string_handling(gen, valid):
    backend = FakeBackend(probs=lambda p: (0.9, 0.1), text=lambda p: gen)
    j = GenRMJudge(backend).compare("p", GOOD, BAD)
    assert j.valid == valid
    assert j.raw == gen.text


def test_no_mass_on_either_letter_is_invalid():
    backend = FakeBackend(probs=lambda p: (0.0, 0.0))
    j = GenRMJudge(backend, mode="verdict").compare("p", GOOD, BAD)
    assert not j.valid and "no probability on A or B" in j.error and j.orders[0].mass == 0.0


def test_cost_shares_sum_to_the_batch():
    backend = FakeBackend(probs=lambda p: (0.9, 0.1))
    judgments = GenRMJudge(backend, swap=True).compare_many(PAIRS)
    total = sum((j.cost for j in judgments[1:]), judgments[0].cost)
    assert total.backend_calls == pytest.approx(2)
    n_words = len(reply("A").split())
    assert total.completion_tokens == 6 * n_words
    assert total.prompt_tokens == 6 * 100 + 6 * 7  # generation prompts + choice_probs reads
    assert judgments[0].cost.completion_tokens == 2 * n_words  # its own two orders
    assert total.seconds >= 0


def test_compare_is_compare_many_of_one_and_empty_is_free():
    backend = FakeBackend(probs=lambda p: (0.2, 0.6))
    judge = GenRMJudge(backend, mode="verdict")
    assert judge.compare("p", GOOD, BAD).p_a == pytest.approx(0.25)
    assert judge.compare_many([]) == []
    assert backend.kinds() == [("choice_probs", 1)]


def test_bad_settings_and_bad_backends_raise_clear_errors():
    with pytest.raises(ConfigError, match="reasoning"):
        GenRMJudge(FakeBackend(), mode="fast")
    with pytest.raises(ConfigError, match="max_new_tokens"):
        GenRMJudge(FakeBackend(), max_new_tokens=0)
    with pytest.raises(TypeError, match=r"\(prompt, a, b\)"):
        GenRMJudge(FakeBackend()).compare_many([("p", "a")])

    class Short(FakeBackend):
        def choice_probs(self, prompts, choices):
            return np.zeros((len(prompts), 3))

    with pytest.raises(BackendError, match="shape"):
        GenRMJudge(Short(), mode="verdict").compare("p", "a", "b")
