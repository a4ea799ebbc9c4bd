"""Forcing the verdict (docs/design.md, "Forced verdict"): an analysis that never reached its
verdict is closed, and ``p(A)`` read there, in the parser, the judge, the GenRM GRPO reward, the
CLI and distillation; everything else stays invalid."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from quillrl.backends import make_backend
from quillrl.backends.base import ChatPrompt, Generation
from quillrl.cli import app
from quillrl.errors import ConfigError
from quillrl.judges import GenRMJudge
from quillrl.judges.genrm import verdict_probe
from quillrl.judges.parse import FORCEABLE_ERRORS, close_for_verdict, parse_judgment
from quillrl.judges.template import REASONING_PREFILL, VERDICT_OPEN
from quillrl.rewards import shape_by_entropy
from quillrl.train.genrm_grpo_trainer import EntropyShapedVerdictReward
from test_judges_genrm import BAD, GOOD, FakeBackend, prefers_good, slot_a

CUT_OFF = " A holds together, B wanders; Originality: A"
PROSE_AFTER = " fine.\n</analysis>\nThe answer is: A."


def _truncated(text: str) -> Generation:
    return Generation(text=text, finish_reason="length", prompt_tokens=100, completion_tokens=64)


@pytest.mark.parametrize("reply, error", [
    (CUT_OFF, "truncated: <analysis> is never closed"),
    (" fine.\n</analysis>\n", "truncated: no <verdict> after </analysis>"),
    (PROSE_AFTER, "missing <verdict> after </analysis>"),
])
def test_each_forceable_error_closes_to_a_valid_judgment(reply, error):
    text = REASONING_PREFILL + reply
    assert parse_judgment(text).error == error and error in FORCEABLE_ERRORS
    closed = close_for_verdict(text, error)
    assert closed.endswith("</analysis>\n" + VERDICT_OPEN) and "The answer" not in closed
    parsed = parse_judgment(closed + "B</verdict>")
    assert parsed.valid and parsed.verdict == "B" and parsed.verdict_pos == len(closed)


@pytest.mark.parametrize("text", [
    "<verdict>A</verdict>",                                              # no analysis at all
    "Sure! <analysis>\nCoherence: x\n</analysis>\n<verdict>A</verdict>",   # text before it
    "<analysis>\nCoherence: <verdict>A</verdict> and on",                 # verdict inside, unclosed
    "<analysis>\nCoherence: x\n</analysis>\n<verdict>a</verdict>",        # a letter, but not A/B
    "<analysis>\nCoherence: x\n</analysis>\n<verdict>A</verdict> no, B",  # taken back
    "",
])
def test_malformed_answers_are_never_forced(text):
    parsed = parse_judgment(text)
    assert not parsed.valid
    assert close_for_verdict(text, parsed.error) is None
    assert verdict_probe(ChatPrompt((), ""), text, force=True) == (parsed, None)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="<>"), min_size=1, max_size=80),
       st.integers(0, 80))
def test_any_tag_free_analysis_cut_anywhere_closes_to_a_valid_judgment(analysis, cut):
    reply = analysis[:cut]
    parsed, probe = verdict_probe(ChatPrompt((), REASONING_PREFILL), reply, force=True)
    if not reply.strip():  # an empty reply is "empty output", not an unfinished analysis
        assert not parsed.valid and parsed.error == "empty output" and probe is None
        return
    assert parse_judgment(REASONING_PREFILL + reply).error in FORCEABLE_ERRORS
    assert parsed.valid and parsed.forced and parsed.verdict is None
    assert parse_judgment(probe.assistant_prefix + "A</verdict>").valid


def test_judge_forces_only_when_asked_and_marks_the_order():
    texts = {GOOD: CUT_OFF, BAD: PROSE_AFTER}
    backend = FakeBackend(prefers_good(0.8), text=lambda p: _truncated(texts[slot_a(p)]))
    plain = GenRMJudge(backend, swap=True).compare("p", GOOD, BAD)
    assert not plain.valid and not plain.forced

    forcing = GenRMJudge(backend, swap=True, force_verdict=True)
    judgment = forcing.compare("p", GOOD, BAD)
    assert judgment.valid and judgment.forced and all(o.forced for o in judgment.orders)
    assert judgment.p_a == pytest.approx(0.8) and judgment.verdict == "A"
    # the probe is the closed analysis: p(A) is read right after the forced <verdict>
    probes = backend.calls[-1][1]
    assert all(p.assistant_prefix.endswith("</analysis>\n<verdict>") for p in probes)
    # a written verdict is never marked forced, and its letter stays the verdict
    written = GenRMJudge(FakeBackend(prefers_good(0.8)), force_verdict=True).compare("p", GOOD, BAD)
    assert written.valid and not written.forced


def test_force_verdict_needs_reasoning_mode():
    with pytest.raises(ConfigError, match="reasoning"):
        GenRMJudge(FakeBackend(), mode="verdict", force_verdict=True)


def test_real_tiny_model_that_never_finishes_is_forced_to_a_verdict(tiny_model_dir):
    backend = make_backend(f"local:{tiny_model_dir}", device="cpu")
    judge = GenRMJudge(backend, swap=True, max_new_tokens=6, force_verdict=True)
    judgments = judge.compare_many([("Write about the sea.", "The knight walked home.", "a fox"),
                                    ("A haiku.", "Moon on the water", "cold")])
    # 6 random tokens cannot close an analysis: both orders are closed and scored
    assert all(j.valid and j.forced for j in judgments)
    assert all(0.0 <= j.p_a <= 1.0 and 0.0 <= j.entropy <= 1.0 for j in judgments)
    judge.close()


def test_forced_penalty_and_its_checks():
    rewards = shape_by_entropy([True, False, True], [0.2, 0.2, 0.2], forced=[True, True, False],
                               forced_penalty=0.25)
    unforced = shape_by_entropy([True, False, True], [0.2, 0.2, 0.2])
    assert rewards.tolist() == pytest.approx((unforced - [0.25, 0.25, 0.0]).tolist())
    with pytest.raises(ValueError, match="invalid"):
        shape_by_entropy([None], [None], forced=[True])
    with pytest.raises(ConfigError, match="forced_penalty"):
        shape_by_entropy([], [], forced_penalty=-1)


def test_forcing_gives_a_judge_too_small_to_finish_a_group_reward_to_learn_from():
    # four sampled chains of one pair, none finished; the judge's p(A) after each differs
    chains = [" A is vivid", " B is", " A holds, B drifts", " both are"]
    p_after = {c: p for c, p in zip(chains, (0.9, 0.4, 0.7, 0.55))}

    def probs(probes):
        return np.array([[p_after[next(c for c in chains if c in pr.assistant_prefix)],
                          1 - p_after[next(c for c in chains if c in pr.assistant_prefix)]]
                         for pr in probes])

    prompt = [[{"role": "user", "content": "judge"}, {"role": "assistant", "content": REASONING_PREFILL}]]
    unforced = EntropyShapedVerdictReward(probs)(prompt * 4, chains, label=["A"] * 4)
    assert len(set(unforced)) == 1  # all invalid: zero group variance, no update
    forced = EntropyShapedVerdictReward(probs, force_verdict=True)(prompt * 4, chains, label=["A"] * 4)
    assert np.std(forced) > 0.1
    # right and confident (0.9) < right and unsure (0.7) by shaping; wrong (0.4) lowest
    assert forced[1] == min(forced) and forced[2] > forced[0]


def _pairs_file(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"id": "p1", "prompt": "Write.", "chosen": GOOD, "rejected": BAD}) + "\n")
    return path


def test_cli_refuses_force_verdict_in_verdict_mode(tmp_path):
    result = CliRunner().invoke(app, ["judge", "--pairs", str(_pairs_file(tmp_path)), "--judge",
                                      "genrm:local:smollm2-135m-instruct", "--mode", "verdict",
                                      "--force-verdict", "--out", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 2 and "--force-verdict" in result.output
    result = CliRunner().invoke(app, ["judge", "--pairs", str(_pairs_file(tmp_path)), "--judge",
                                      "baseline:length", "--force-verdict",
                                      "--out", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 2 and "applies only to GenRM" in result.output
    assert not (tmp_path / "o.jsonl").exists()


def test_cli_judge_forces_counts_and_refuses_to_mix_on_resume(tmp_path, tiny_model_dir):
    pairs, out = _pairs_file(tmp_path), tmp_path / "j.jsonl"
    base = ["judge", "--pairs", str(pairs), "--judge", f"genrm:local:{tiny_model_dir}",
            "--max-new-tokens", "4", "--swap", "--device", "cpu", "--out", str(out)]
    result = CliRunner().invoke(app, base + ["--force-verdict"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["valid"] == summary["forced"] == 1 and summary["force_verdict"] is True
    line = json.loads(out.read_text())
    assert line["forced"] and all(o["forced"] for o in line["orders"])
    mixed = CliRunner().invoke(app, base)  # the same file without forcing
    assert mixed.exit_code == 2 and "force_verdict" in mixed.output


def test_distill_with_forcing_keeps_closed_chains_and_refuses_an_unforced_resume(tmp_path):
    from quillrl.distill import distill, meta_path

    pairs, out = _pairs_file(tmp_path), tmp_path / "sft.jsonl"
    texts = {GOOD: CUT_OFF, BAD: " B is thin"}
    teacher = GenRMJudge(FakeBackend(prefers_good(0.9), text=lambda p: _truncated(texts[slot_a(p)])),
                         swap=True, force_verdict=True)
    summary = distill(pairs, teacher, out)
    assert summary["kept"] == summary["kept_forced"] == 1 and summary["force_verdict"] is True
    examples = [json.loads(x) for x in out.read_text().splitlines()]
    assert all(e["forced"] for e in examples)
    target = examples[0]["messages"][-1]["content"]
    assert target.startswith(REASONING_PREFILL) and parse_judgment(target).valid

    unforced = GenRMJudge(FakeBackend(prefers_good(0.9)), swap=True)
    with pytest.raises(ConfigError, match="force_verdict"):
        distill(pairs, unforced, out)
    # a meta file from before the setting existed reads as unforced
    meta = json.loads(meta_path(out).read_text())
    del meta["force_verdict"]
    meta_path(out).write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="force_verdict: False there, True now"):
        distill(pairs, teacher, out)


def test_eval_alignment_reports_the_forced_share(tmp_path, tiny_model_dir):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"Write {i}.", "chosen": GOOD,
                                         "rejected": BAD}) + "\n" for i in range(2)))
    result = CliRunner().invoke(app, ["eval", "alignment", "--pairs", str(pairs), "--judge",
                                      f"genrm:local:{tiny_model_dir}", "--max-new-tokens", "4",
                                      "--swap", "--force-verdict", "--device", "cpu",
                                      "--resamples", "100", "--out", str(tmp_path / "all.jsonl")])
    assert result.exit_code == 0, result.output
    assert "reasoning, forced 100.0%" in result.output
    # the file reads back as a forced run: scoring it again gives the same row
    again = CliRunner().invoke(app, ["eval", "alignment", "--pairs", str(pairs), "--judgments",
                                     str(tmp_path / "all.jsonl"), "--resamples", "100"])
    assert again.exit_code == 0 and "reasoning, forced 100.0%" in again.output


def test_policy_reward_config_refuses_forcing_in_verdict_mode(tmp_path):
    from quillrl.config import load_config
    from quillrl.train.policy_run import PolicyConfig

    path = tmp_path / "policy.yaml"
    path.write_text("reward:\n  mode: verdict\n  judge_force_verdict: true\n")
    with pytest.raises(ConfigError, match="judge_force_verdict .* needs mode: reasoning"):
        load_config(path, PolicyConfig)
    path.write_text("reward:\n  mode: reasoning\n  judge_force_verdict: true\n")
    assert load_config(path, PolicyConfig).reward.judge_force_verdict is True
