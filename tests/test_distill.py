"""``quillrl distill``: the consistency filter, the SFT example format, resuming after a stop or a crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from quillrl.backends.base import Backend, ChatPrompt, Generation, SamplingParams, UsageCounter
from quillrl.distill import classify, distill, ledger_path, read_examples
from quillrl.errors import ConfigError, DataError
from quillrl.judges import GenRMJudge, parse_judgment
from quillrl.judges.template import judge_prompt

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
            text = ("<analysis>\nCoherence: B < A.\n</analysis>\n" + (f"<verdict>{letter}" if letter
                                                                         else "no verdict"))
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
        parsed = parse_judgment(reply["content"])
        assert reply["role"] == "assistant" and parsed.valid and parsed.verdict == example["label"]
        assert parsed.analysis == "Coherence: B \u2039 A."  # the teacher's analysis, neutralised
    assert read_examples(out) == examples


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
        read_examples(bad)
