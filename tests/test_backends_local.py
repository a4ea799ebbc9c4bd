"""The transformers backend on tiny random models: batching, padding, stops, logprobs, choices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from quillrl.backends import ChatPrompt, SamplingParams
from quillrl.backends.local import LocalBackend, finish_row
from quillrl.backends.prompts import choice_token_ids, encode
from quillrl.errors import ConfigError

PROMPTS = [
    "Once upon a time",
    "The knight walked home; the moon was bright and the road was long.",
    ChatPrompt.user("Write a haiku about autumn leaves."),
    ChatPrompt.user("Story A or story B?", assistant_prefix="<verdict>", system="You judge."),
    "I",
]


@pytest.fixture(scope="module")
def backend(tiny_model_dir) -> LocalBackend:
    return LocalBackend(tiny_model_dir, batch_size=2, device="cpu")


def manual_last_logprobs(backend: LocalBackend, prompt) -> torch.Tensor:
    """Log-softmax at the last position of one unpadded prompt: the reference for everything."""
    ids = torch.tensor([encode(backend.tokenizer, prompt)])
    with torch.no_grad():
        logits = backend.model(input_ids=ids).logits[0, -1].float()
    return torch.log_softmax(logits, -1)


def test_batched_greedy_equals_one_by_one(backend):
    params = SamplingParams(max_new_tokens=6, logprobs=2)
    batched = backend.generate(PROMPTS, params)
    for prompt, got in zip(PROMPTS, batched):
        alone = backend.generate([prompt], params)[0]
        assert got.text == alone.text and got.tokens == alone.tokens
        np.testing.assert_allclose(got.token_logprobs, alone.token_logprobs, atol=1e-4)


@pytest.mark.parametrize("fixture", ["tiny_model_dir", "tiny_qwen_dir"])
def test_choice_probs_equal_a_manual_forward_pass(fixture, request):
    backend = LocalBackend(request.getfixturevalue(fixture), batch_size=3, device="cpu")
    choices = ["A", "B", " the", "Once"]
    # prompts of very different lengths share batches, so most rows are left-padded
    probs = backend.choice_probs(PROMPTS, choices)
    assert probs.shape == (len(PROMPTS), len(choices))
    for row, prompt in zip(probs, PROMPTS):
        ids = choice_token_ids(backend.tokenizer, prompt, encode(backend.tokenizer, prompt), choices)
        expected = manual_last_logprobs(backend, prompt).exp()[ids].numpy()
        np.testing.assert_allclose(row, expected, rtol=1e-4, atol=1e-7)


def test_choice_token_ids_follow_the_prompt_and_survive_merges(backend):
    tok = backend.tokenizer
    ids = lambda s: tok(s, add_special_tokens=False).input_ids  # noqa: E731
    # "<verdict>" + "A": no merge across the boundary, the token right after the prompt
    assert choice_token_ids(tok, "<verdict>", ids("<verdict>"), ["A"]) == [ids("<verdict>A")[-1]]
    # a leading space is part of the choice, never added or dropped
    assert choice_token_ids(tok, "Story", ids("Story"), [" A"]) == [ids(" A")[0]]
    # "Onc" + "e" merges into "Once": fall back to "e" tokenized alone
    assert ids("Onc") != ids("Once")[: len(ids("Onc"))]
    assert choice_token_ids(tok, "Onc", ids("Onc"), ["e"]) == [ids("e")[0]]
    with pytest.raises(ConfigError, match="non-empty"):
        choice_token_ids(tok, "x", ids("x"), [""])


def test_chat_prompt_uses_the_template_then_the_prefix(backend):
    prompt = ChatPrompt.user("hi", assistant_prefix="<verdict>")
    text = backend.tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    expected = backend.tokenizer(text + "<verdict>", add_special_tokens=False).input_ids
    assert encode(backend.tokenizer, prompt) == expected


def test_max_tokens_gives_length(backend):
    gens = backend.generate(PROMPTS[:3], SamplingParams(max_new_tokens=5))
    for g in gens:
        assert g.finish_reason == "length" and g.completion_tokens == 5 and g.prompt_tokens > 0


def test_stop_strings_cut_the_text_and_stop_the_batch_early(backend):
    free = backend.generate(PROMPTS, SamplingParams(max_new_tokens=12))
    # a stop string taken from inside each greedy output: rows stop where it first appears
    stops = tuple({g.text[2:4] for g in free if len(g.text) >= 4})
    steps = []  # one forward pass per decoding step and batch
    hook = backend.model.register_forward_hook(lambda *args: steps.append(1))
    try:
        gens = backend.generate(PROMPTS, SamplingParams(max_new_tokens=12, stop=stops, logprobs=1))
    finally:
        hook.remove()
    for g, ref in zip(gens, free):
        hits = [ref.text.find(s) for s in stops if s in ref.text]
        if hits:
            assert g.text == ref.text[: min(hits)] and g.finish_reason == "stop"
            # generation stopped right after the stop string, well before the budget
            assert g.completion_tokens < 12 and len(g.tokens) == g.completion_tokens
        else:
            assert g.text == ref.text and g.finish_reason == "length"
    assert any(g.finish_reason == "stop" for g in gens)
    if all(g.finish_reason == "stop" for g in gens):
        # every batch ended when its last row stopped, not at the 12-token budget
        assert len(steps) <= sum(g.completion_tokens for g in gens) < 12 * len(gens)


def test_stop_strings_never_match_across_the_prompt_boundary(backend):
    prompt = PROMPTS[2]  # the chat template ends the prompt with "\n"
    free = backend.generate([prompt], SamplingParams(max_new_tokens=12))[0].text
    stop = "\n" + free[0]  # would match prompt + first generated token (transformers' stop_strings)
    got = backend.generate([prompt], SamplingParams(max_new_tokens=12, stop=(stop,)))[0]
    at = free.find(stop)
    assert got.text == (free[:at] if at >= 0 else free)
    assert got.finish_reason == ("stop" if at >= 0 else "length")


def test_logprobs_shapes_and_values(backend):
    k = 3
    gens = backend.generate(PROMPTS[:3], SamplingParams(max_new_tokens=4, logprobs=k))
    for prompt, g in zip(PROMPTS, gens):
        assert len(g.tokens) == len(g.token_logprobs) == len(g.top_logprobs) == g.completion_tokens
        for chosen, top in zip(g.token_logprobs, g.top_logprobs):
            assert 1 <= len(top) <= k and all(v <= 0 for v in top.values())
            assert chosen == pytest.approx(max(top.values()), abs=1e-5)  # greedy takes the argmax
        first = manual_last_logprobs(backend, prompt)
        assert g.token_logprobs[0] == pytest.approx(first.max().item(), abs=1e-4)
    none = backend.generate(PROMPTS[:1], SamplingParams(max_new_tokens=2))[0]
    assert none.tokens is None and none.top_logprobs is None
    zero = backend.generate(PROMPTS[:1], SamplingParams(max_new_tokens=2, logprobs=0))[0]
    assert zero.top_logprobs == [{}, {}] and len(zero.token_logprobs) == 2


def test_logprobs_come_before_temperature(backend):
    greedy = backend.generate(PROMPTS[:2], SamplingParams(max_new_tokens=1, logprobs=5))
    hot = backend.generate(PROMPTS[:2], SamplingParams(max_new_tokens=1, logprobs=5,
                                                       temperature=0.3, seed=1))
    for g, h in zip(greedy, hot):
        assert g.top_logprobs[0] == pytest.approx(h.top_logprobs[0], abs=1e-5)


def test_seeded_sampling_is_reproducible_and_leaves_the_global_rng_alone(backend):
    params = SamplingParams(max_new_tokens=8, temperature=1.0, seed=7)
    state = torch.random.get_rng_state()
    a = [g.text for g in backend.generate(PROMPTS, params)]
    assert torch.equal(state, torch.random.get_rng_state())
    assert a == [g.text for g in backend.generate(PROMPTS, params)]
    b = [g.text for g in backend.generate(PROMPTS, SamplingParams(max_new_tokens=8, temperature=1.0, seed=8))]
    assert a != b
    # identical prompts in one call (a GRPO group) get different samples
    group = [g.text for g in backend.generate(["Once upon a time"] * 4, params)]
    assert len(set(group)) > 1


def test_a_live_model_is_used_as_is_and_its_mode_restored(tiny_model_dir):
    from quillrl.models import load

    model, tokenizer = load(tiny_model_dir)
    model.train()
    backend = LocalBackend((model, tokenizer))
    g = backend.generate(["Once upon a time"], SamplingParams(max_new_tokens=3))[0]
    assert g.completion_tokens == 3 and model.training and backend.model is model
    assert backend.usage.calls == 1 and backend.usage.completion_tokens == 3


@pytest.mark.parametrize("tokens, expected", [
    ([5, 6, 2, 2], ("ab", "stop", 3)),      # EOS ends the row and is counted, not shown
    ([5, 6, 9, 9], ("ab", "stop", 2)),      # pad: the row met a stop string earlier
    ([5, 6, 7, 8], ("abcd", "length", 4)),  # the budget ran out
    ([5, 6, 7], ("abc", "stop", 3)),        # shorter than the budget: a stop string ended it
    ([5, 7, 6, 8], ("a", "stop", 4)),       # cut at the stop string "cb"
    ([5, 9, 6, 8], ("abd", "length", 4)),   # a pad inside the text is a token like any other
])
def test_finish_row(tokens, expected):
    letters = {5: "a", 6: "b", 7: "c", 8: "d", 9: ""}  # pad decodes to nothing (special)
    decode = lambda ids: "".join(letters[i] for i in ids)  # noqa: E731
    assert finish_row(tokens, eos_ids={2}, pad_id=9, max_new_tokens=4, stop=("cb",),
                      decode=decode) == expected


@pytest.mark.parametrize("params, message", [
    (SamplingParams(max_new_tokens=0), "max_new_tokens"),
    (SamplingParams(temperature=-1), "temperature"),
    (SamplingParams(top_p=0), "top_p"),
    (SamplingParams(logprobs=-1), "logprobs"),
    (SamplingParams(stop="</v>"), "stop"),
])
def test_bad_params_are_refused(backend, params, message):
    with pytest.raises(ConfigError, match=message):
        backend.generate(["x"], params)


def test_bad_calls_are_refused(backend):
    with pytest.raises(ConfigError, match="choice"):
        backend.choice_probs(["x"], [])
    with pytest.raises(ConfigError, match="empty prompt"):
        backend.choice_probs([""], ["A"])
    with pytest.raises(ConfigError, match="batch_size"):
        LocalBackend((backend.model, backend.tokenizer), batch_size=0)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA"):
            LocalBackend("smollm2-135m-instruct", device="cuda")
    assert backend.generate([], SamplingParams()) == []
    assert backend.choice_probs([], ["A"]).shape == (0, 1)


@pytest.mark.parametrize("arch_dir", ["tiny_model_dir", "tiny_qwen_dir"])
def test_shared_prefix_kv_cache_reads_the_same_probabilities(request, arch_dir):
    """Pivot comparisons (both orders, stories of different lengths) through the prefix cache
    give the p(A) of a full pass per prompt, to 1e-5."""
    from quillrl.judges.template import SYSTEM_MESSAGE, judge_prompt

    model_dir = request.getfixturevalue(arch_dir)
    pivot, others = "The pivot story, told at length by the sea.", ["a fox", "The knight walked home; the "
                                                                    "moon was bright.", "Once upon a time " * 5]
    prompts = [judge_prompt("Write about the sea.", s, pivot, "verdict") for s in others]
    prompts += [judge_prompt("Write about the sea.", pivot, s, "verdict") for s in others]
    prompts += [judge_prompt("Another task.", others[0], pivot, "verdict")]
    cached = LocalBackend(model_dir, batch_size=4, device="cpu")
    plain = LocalBackend((cached.model, cached.tokenizer), batch_size=1, prefix_cache=False)
    shared: list[int] = []
    run = cached._probs_after_shared_prefix
    cached._probs_after_shared_prefix = lambda rows, n: shared.append(n) or run(rows, n)
    got = cached.choice_probs(prompts, ["A", "B"])
    want = plain.choice_probs(prompts, ["A", "B"])
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    # the prefix path ran, for both batches, over at least the system message
    system = len(cached.tokenizer(SYSTEM_MESSAGE, add_special_tokens=False)["input_ids"])
    assert len(shared) == 2 and min(shared) > system


@pytest.mark.parametrize("arch_dir", ["tiny_model_dir", "tiny_qwen_dir"])
def test_reasoning_probes_after_the_generation_cache_read_the_same_probabilities(request, arch_dir):
    """Verdict probes (judge prompt + its own chain + the closing) read after the KV cache the
    chain's generation left give the probabilities of full passes, over left-padded rows of
    different lengths; the kept prefix covers at least each judge prompt, and the cache is
    released when the scope ends. Compared as log-probabilities: a tiny random model's p(A)
    after renormalisation is too close to 0.5 to tell a wrong cache from a right one."""
    from quillrl.judges.genrm import GenRMJudge, verdict_probe
    from quillrl.judges.template import judge_prompt

    model_dir = request.getfixturevalue(arch_dir)
    reusing = LocalBackend(model_dir, batch_size=4, device="cpu")
    plain = LocalBackend((reusing.model, reusing.tokenizer), batch_size=4, generation_cache_bytes=0)
    pairs = [("Write about the sea.", "a fox", "The knight walked home; the moon was bright."),
             ("Another task, longer than the first one.", "Once upon a time " * 6, "I"),
             ("Third.", "The sea was grey and the gulls were loud.", "A lighthouse keeper wept.")]
    prompts = [judge_prompt(p, x, y, "reasoning") for p, a, b in pairs for x, y in ((a, b), (b, a))]
    after: list[tuple[int, int]] = []  # (kept prefix, that probe's length)
    run = reusing._probs_after_cache
    reusing._probs_after_cache = lambda cache, n, suffixes: after.append((n, n + len(suffixes[0]))) or run(cache, n, suffixes)
    params = SamplingParams(max_new_tokens=12)
    with reusing.reusing_generation_cache():
        gens = reusing.generate(prompts, params)
        # force: every chain gets a verdict position, however the tiny model's text ends
        probes = [verdict_probe(p, g.text, force=True)[1] for p, g in zip(prompts, gens)]
        got = reusing.choice_probs(probes, ["A", "B"])
    assert reusing._kept is None
    assert [g.text for g in plain.generate(prompts, params)] == [g.text for g in gens]
    want = plain.choice_probs(probes, ["A", "B"])
    # right: 2e-7; a cache shifted by one token: 8e-5 to 1e-4
    np.testing.assert_allclose(np.log(got), np.log(want), atol=1e-5, rtol=0)
    lengths = [len(encode(reusing.tokenizer, p)) for p in prompts]
    assert len(after) == len(prompts)
    assert sorted(n for n, _ in after) >= sorted(lengths)  # elementwise: no prompt ran twice
    assert all(n < total for n, total in after)
    # the judge's reasoning mode runs in the scope: its probes take the same path
    after.clear()
    GenRMJudge(reusing, mode="reasoning", swap=True, max_new_tokens=12, force_verdict=True).compare_many(pairs)
    assert len(after) == len(prompts) and reusing._kept is None
