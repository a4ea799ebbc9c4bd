"""``quillrl distill``: the consistency filter, the SFT example format, resuming after a stop or a crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from quillrl.backends.base import Backend, ChatPrompt, Generation, SamplingParams, UsageCounter
from quillrl.data import read_sft_examples
from quillrl.distill import Prices, classify, distill, ledger_path, meta_path
from quillrl.errors import BackendError, ConfigError, DataError
from quillrl.judges import GenRMJudge, parse_judgment
from quillrl.judges.template import REASONING_PREFILL, TEMPLATE_VERSION, judge_prompt

# pair id -> the letter the teacher writes in order AB (chosen in slot A) and in order BA
# (chosen in slot B); None is an unparseable reply.
SCRIPT = {
    "p0": ("A", "B"),    # picks chosen both times: kept
    "p1": ("A", "A"),    # always slot A: position-inconsistent
    "p2": ("B", "A"),    # picks rejected both times: disagrees with the human
    "p3": ("A", None),   # second order unparseable: invalid
    "p4": ("A", "B"),    # kept
}


class ScriptedBackend(Backend):
    """Replies with the scripted letter for the pair and order it recognises in the prompt."""

    name = "scripted"

    def __init__(self, fail_on_call: int | None = None):
        self.fail_on_call, self.generate_calls = fail_on_call, 0
        self.usage = UsageCounter()

    def generate(self, prompts: Sequence[ChatPrompt], params: SamplingParams) -> list[Generation]:
        self.generate_calls += 1
        if self.generate_calls == self.fail_on_call:
            raise RuntimeError("teacher crashed mid-run")
        out = []
        for p in prompts:
            user = p.messages[1]["content"]
            pair_id = user.split("<prompt>\nprompt of ", 1)[1].split("\n", 1)[0]
            slot_a = user.split("<candidate_a>\n", 1)[1].split("\n", 1)[0]
            order = 0 if slot_a.startswith("chosen") else 1
            letter = SCRIPT[pair_id][order]
            assert p.assistant_prefix == REASONING_PREFILL  # the teacher continues the prefill
            text = " B < A.\n</analysis>\n" + (f"<verdict>{letter}" if letter else "no verdict")
            out.append(Generation(text=text, finish_reason="stop", prompt_tokens=10, completion_tokens=5))
        return out

    def choice_probs(self, prompts, choices) -> np.ndarray:
        return np.array([[0.6, 0.2]] * len(prompts))


def write_pairs(path: Path) -> Path:
    rows = [{"id": pid, "prompt": f"prompt of {pid}", "chosen": f"chosen story {pid}",
             "rejected": f"rejected story {pid}"} for pid in SCRIPT]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def teacher(**kw) -> GenRMJudge:
    return GenRMJudge(ScriptedBackend(**kw), mode="reasoning", swap=True)


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_filter_keeps_only_consistent_human_agreeing_pairs(tmp_path):
    out = tmp_path / "sft.jsonl"
    summary = distill(write_pairs(tmp_path / "pairs.jsonl"), teacher(), out, batch_size=2)
    assert summary["kept"] == 2 and summary["examples"] == 4
    assert summary["dropped"] == {"invalid": 1, "position_inconsistent": 1, "disagrees_with_human": 1}
    assert summary["invalid_by_reason"] == {"missing <verdict> after </analysis>": 1}
    assert summary["template"] == TEMPLATE_VERSION and summary["cost"]["cache_misses"] == 10 + 9  # 10 replies, 9 valid probes
    ledger = {row["id"]: row for row in lines(ledger_path(out))}
    assert {k: v["outcome"] for k, v in ledger.items()} == {
        "p0": "kept", "p1": "position_inconsistent", "p2": "disagrees_with_human", "p3": "invalid",
        "p4": "kept"}
    assert ledger["p1"]["verdicts"] == {"AB": "A", "BA": "A"} and "order BA" in ledger["p3"]["error"]
    examples = lines(out)
    assert [e["id"] for e in examples] == ["p0:AB", "p0:BA", "p4:AB", "p4:BA"]
    for example in examples:
        chosen, rejected = "chosen story " + example["pair_id"], "rejected story " + example["pair_id"]
        a, b = (chosen, rejected) if example["order"] == "AB" else (rejected, chosen)
        # the user turn is exactly what GenRMJudge sends, system message included
        sent = judge_prompt("prompt of " + example["pair_id"], a, b, "reasoning")
        assert example["messages"][:2] == [dict(m) for m in sent.messages]
        reply = example["messages"][2]
        assert reply["content"].startswith(REASONING_PREFILL)  # SFT targets contain the prefill
        parsed = parse_judgment(reply["content"])
        assert reply["role"] == "assistant" and parsed.valid and parsed.verdict == example["label"]
        assert parsed.analysis == "Coherence: B \u2039 A."  # the teacher's analysis, neutralised
    assert read_sft_examples(out, REASONING_PREFILL) == examples


def test_classify_needs_both_orders():
    one_order = GenRMJudge(ScriptedBackend(), mode="reasoning").compare("prompt of p0", "chosen", "rejected")
    assert classify(one_order) == "invalid"


def test_rerun_after_a_partial_run_judges_only_the_rest(tmp_path):
    pairs, out = write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "sft.jsonl"
    first = distill(pairs, teacher(), out, limit=2)
    assert first["judged"] == 2 and first["kept"] == 1
    second = distill(pairs, teacher(), out)
    assert second["already_done"] == 2 and second["judged"] == 3
    assert second["kept"] == 2 and second["this_run"]["kept"] == 1
    assert second["dropped"]["position_inconsistent"] == 1  # counted over the whole ledger
    assert [e["id"] for e in lines(out)] == ["p0:AB", "p0:BA", "p4:AB", "p4:BA"]
    assert distill(pairs, teacher(), out)["judged"] == 0


def test_crash_mid_batch_loses_nothing_written(tmp_path):
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    clean = tmp_path / "clean.jsonl"
    distill(pairs, teacher(), clean, batch_size=2)
    out = tmp_path / "sft.jsonl"
    with pytest.raises(RuntimeError, match="crashed"):
        distill(pairs, teacher(fail_on_call=2), out, batch_size=2)  # batch 2 of 3 fails
    assert [r["id"] for r in lines(ledger_path(out))] == ["p0", "p1"]
    resumed = distill(pairs, teacher(), out, batch_size=2)
    assert resumed["already_done"] == 2 and resumed["judged"] == 3
    assert out.read_text() == clean.read_text()
    assert ledger_path(out).read_text() == ledger_path(clean).read_text()


def test_examples_without_a_ledger_line_are_judged_again_not_duplicated(tmp_path):
    """A crash between writing a pair's examples and its ledger line, and one mid-line."""
    pairs, out = write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "sft.jsonl"
    distill(pairs, teacher(), out)
    full = out.read_text()
    ledger = ledger_path(out)
    kept_lines = ledger.read_text().splitlines(keepends=True)
    ledger.write_text("".join(kept_lines[:-1]))        # p4's ledger line never written
    out.write_text(full + '{"id": "p9:AB", "pair_')    # and a line cut off mid-write
    resumed = distill(pairs, teacher(), out)
    assert resumed["orphans_removed"] == 2 and resumed["judged"] == 1
    assert out.read_text() == full


def test_bad_inputs_are_clear_errors(tmp_path):
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    with pytest.raises(ConfigError, match="GenRM spec"):
        distill(pairs, "baseline:length", tmp_path / "o.jsonl")
    with pytest.raises(ConfigError, match="swap=True"):
        distill(pairs, GenRMJudge(ScriptedBackend(), mode="reasoning"), tmp_path / "o.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "x"},
                                            {"role": "user", "content": "y"}]}) + "\n")
    with pytest.raises(DataError, match="bad.jsonl:1: the last turn must be the assistant"):
        read_sft_examples(bad, REASONING_PREFILL)


# -- the response cache, resume refusal, bad teacher output, pairs too long ----------------------

def test_the_cache_makes_a_rerun_free(tmp_path):
    pairs, cache = write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "teacher.cache.jsonl"
    first = distill(pairs, teacher(), tmp_path / "a.jsonl", cache=cache)
    again = teacher()
    second = distill(pairs, again, tmp_path / "b.jsonl", cache=cache)  # a new --out, same cache
    assert again.backend.generate_calls == 0
    assert second["cost"]["cache_hits"] == first["cost"]["cache_misses"] == 19
    assert second["cost"]["cache_misses"] == 0 and second["cost"]["prompt_tokens"] == 0
    assert second["cost"]["saved_completion_tokens"] == first["cost"]["completion_tokens"] == 50
    assert (tmp_path / "b.jsonl").read_text() == (tmp_path / "a.jsonl").read_text()
    assert first["cost"]["usd"] == 0.0
    priced = distill(pairs, teacher(), tmp_path / "c.jsonl", prices=Prices(prompt=2.0, completion=8.0))
    assert priced["cost"]["usd"] == pytest.approx((100 * 2.0 + 50 * 8.0) / 1e6)


def test_resume_with_another_teacher_or_template_is_refused(tmp_path, monkeypatch):
    pairs, out = write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "sft.jsonl"
    distill(pairs, teacher(), out, limit=2)
    other = teacher()
    other.name = "genrm:openai:http://elsewhere/v1#big"
    with pytest.raises(ConfigError, match="teacher: 'genrm:scripted' there, 'genrm:openai:http://elsewhere"):
        distill(pairs, other, out)
    with pytest.raises(ConfigError, match="max_new_tokens: 512 there, 64 now"):
        distill(pairs, GenRMJudge(ScriptedBackend(), swap=True, max_new_tokens=64), out)
    import quillrl.distill as distill_module

    monkeypatch.setattr(distill_module, "TEMPLATE_VERSION", "genrm-000000000000")
    with pytest.raises(ConfigError, match=f"template: '{TEMPLATE_VERSION}' there, 'genrm-000000000000' now"):
        distill(pairs, teacher(), out)
    # the cache of another template is refused too, even under a fresh --out
    with pytest.raises(ConfigError, match="cache was written with template"):
        distill(pairs, teacher(), tmp_path / "fresh.jsonl", cache=tmp_path / "sft.jsonl.cache.jsonl")
    # and a file from before the meta record cannot be resumed blind
    meta_path(out).unlink()
    with pytest.raises(ConfigError, match="teacher and template that wrote it are unknown"):
        distill(pairs, teacher(), out)


class FlakyBackend(ScriptedBackend):
    """p0 replies with nothing, p1 with garbage, p2's calls time out; the rest as scripted."""

    def generate(self, prompts, params):
        ids = [p.messages[1]["content"].split("prompt of ", 1)[1].split("\n", 1)[0] for p in prompts]
        if "p2" in ids:
            raise BackendError("chat request to http://teacher/v1 failed after 6 attempts: timed out")
        out = super().generate(prompts, params)
        for pid, gen in zip(ids, out):
            if pid in ("p0", "p1"):
                gen.text = "" if pid == "p0" else "\x00\x13}}{{ lorem <verdict"
                gen.finish_reason = "stop" if pid == "p0" else "length"
        return out


def test_bad_teacher_output_is_counted_by_reason_and_the_run_goes_on(tmp_path):
    pairs, out = write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "sft.jsonl"
    summary = distill(pairs, GenRMJudge(FlakyBackend(), swap=True), out, batch_size=5)
    assert summary["invalid_by_reason"] == {"empty output": 1, "truncated": 1, "missing <verdict> after </analysis>": 1}
    assert summary["teacher_failed"] == {"timeout": 1} and summary["kept"] == 1
    assert "p2" not in {row["id"] for row in lines(ledger_path(out))}  # asked again on a rerun
    rerun = distill(pairs, teacher(), out)
    assert rerun["judged"] == 1 and rerun["this_run"]["dropped"]["disagrees_with_human"] == 1


def test_a_pair_longer_than_the_context_is_skipped_with_its_length(tmp_path, tiny_model_dir):
    from quillrl.models import load_tokenizer

    rows = [json.loads(x) for x in write_pairs(tmp_path / "pairs.jsonl").read_text().splitlines()]
    rows[0]["chosen"] = "the long story goes on " * 200
    pairs = tmp_path / "long.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    backend = ScriptedBackend()
    backend.tokenizer = load_tokenizer(tiny_model_dir)
    summary = distill(pairs, GenRMJudge(backend, swap=True, max_new_tokens=64), tmp_path / "sft.jsonl",
                      max_prompt_tokens=1500)
    skipped = summary["too_long"]
    assert skipped["count"] == 1 and skipped["context"] == 1500 and skipped["pairs"][0]["id"] == "p0"
    assert skipped["pairs"][0]["prompt_tokens"] + 64 > 1500
    assert summary["judged"] == 5 and summary["kept"] + sum(summary["dropped"].values()) == 4


def test_sft_examples_without_the_prefill_are_refused(tmp_path):
    old = tmp_path / "old.jsonl"
    old.write_text(json.dumps({"messages": [{"role": "user", "content": "x"}, {
        "role": "assistant", "content": "<analysis>\nA wins.\n</analysis>\n<verdict>A</verdict>"}]}) + "\n")
    with pytest.raises(DataError, match="old.jsonl:1: the assistant turn must start with the reasoning prefill"):
        read_sft_examples(old, REASONING_PREFILL)


def test_loopback_teacher_through_quillrl_serve_continues_the_prefill_and_caches(tmp_path, tiny_model_dir):
    """A real `quillrl serve` process as the teacher, through the CLI: the prefill reaches the
    model (the server's replies equal the in-process model continuing it), bad replies are
    counted by reason, and distilling the same pairs again through the cache costs no request."""
    from typer.testing import CliRunner

    from quillrl.backends import SamplingParams
    from quillrl.backends.local import LocalBackend
    from quillrl.cli import app
    from quillrl.testing import serve_process

    with serve_process(tiny_model_dir) as url:
        spec = f"genrm:openai:{url}#tiny"
        pairs, cache = write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "teacher.cache.jsonl"

        def run(out: str) -> dict:
            result = CliRunner().invoke(app, ["distill", "--pairs", str(pairs), "--teacher", spec,
                                              "--out", str(tmp_path / out), "--cache", str(cache),
                                              "--limit", "2", "--max-new-tokens", "6", "--max-concurrency", "2",
                                              "--max-rps", "50"])
            assert result.exit_code == 0, result.output[-2000:]
            return json.loads(result.stdout.strip().splitlines()[-1])

        first, second = run("a.jsonl"), run("b.jsonl")
    assert first["judged"] == 2 and first["cost"]["teacher_prompts"] >= 4 and first["cost"]["completion_tokens"] > 0
    assert sum(first["invalid_by_reason"].values()) == first["dropped"]["invalid"]
    assert second["cost"]["teacher_prompts"] == 0 and second["cost"]["prompt_tokens"] == 0
    assert second["cost"]["cache_hits"] == first["cost"]["cache_misses"]
    assert lines(ledger_path(tmp_path / "b.jsonl")) == lines(ledger_path(tmp_path / "a.jsonl"))
    # every teacher prompt continued the prefill, and the server's reply is the model's own continuation
    rows = [r for r in lines(cache) if r["kind"] == "generate"]
    assert len(rows) == 4
    local = LocalBackend(tiny_model_dir, device="cpu")
    params = SamplingParams(max_new_tokens=6, temperature=0.0, seed=0, stop=("</verdict>",))
    pair = json.loads(pairs.read_text().splitlines()[0])
    prompt = judge_prompt(pair["prompt"], pair["chosen"], pair["rejected"], "reasoning")
    assert prompt.assistant_prefix == REASONING_PREFILL
    assert local.generate([prompt], params)[0].text in {r["value"]["text"] for r in rows}


class NoPrefillBackend(ScriptedBackend):
    """p0 and p4 write an analysis of their own instead of continuing the prefill."""

    def generate(self, prompts, params):
        out = super().generate(prompts, params)
        for p, gen in zip(prompts, out):
            if "prompt of p0" in p.messages[1]["content"] or "prompt of p4" in p.messages[1]["content"]:
                gen.text = "<analysis>\nOverall A is better.\n</analysis>\n<verdict>" + gen.text[-1]
        return out


def test_an_analysis_without_the_prefill_is_invalid_by_reason_and_the_run_goes_on(tmp_path):
    # Issue 23 §5: this was a bare ValueError from format_judgment, ending the run.
    pairs, out = write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "sft.jsonl"
    summary = distill(pairs, GenRMJudge(NoPrefillBackend(), swap=True), out)
    assert summary["invalid_by_reason"]["analysis does not start with the prefill"] == 2
    assert summary["judged"] == 5 and summary["kept"] == 0 and summary["examples"] == 0


def test_a_teacher_that_refuses_every_connection_exits_non_zero_saying_why(tmp_path):
    # Issue 23 §5: this exited 0 with zero examples.
    import socket

    from typer.testing import CliRunner

    from quillrl.cli import app

    with socket.socket() as s:  # a port nobody listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        pairs = write_pairs(tmp_path / "pairs.jsonl")
        result = CliRunner().invoke(app, [
            "distill", "--pairs", str(pairs), "--out", str(tmp_path / "sft.jsonl"),
            "--teacher", f"genrm:openai:http://127.0.0.1:{port}/v1?timeout=2&attempts=1#m"])
    assert result.exit_code == 2, result.output
    assert "every teacher call failed" in result.stderr and "connection" in result.stderr
