"""``quillrl verify``: joining responses to tasks, the three task formats, --out, errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from quillrl.cli import app


def write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


def run(*args):
    result = CliRunner().invoke(app, ["verify", *map(str, args)])
    return result, (json.loads(result.stdout.strip().splitlines()[-1])
                    if result.exit_code == 0 else None)


TASKS = [
    {"id": "a", "prompt": "Write a haiku.", "constraints": [
        {"id": "creative:syllable_pattern", "kwargs": {"pattern": [5, 7, 5]}},
        {"id": "creative:no_dialogue", "kwargs": {}}]},
    {"id": "b", "prompt": "Write one line.", "constraints": [
        {"id": "creative:line_count", "kwargs": {"max_lines": 1}}]},
    {"id": "c", "prompt": "Say nothing.", "constraints": [
        {"id": "punctuation:no_comma", "kwargs": {}}]},
]
HAIKU = "An old silent pond\nA frog jumps into the pond\nSplash! Silence again."


def test_joins_by_id_key_or_prompt_and_counts_the_rest(tmp_path):
    responses = [
        {"id": "a", "response": HAIKU},
        {"key": "zzz", "prompt": "Write one line.", "response": "Title\nOne line."},  # by prompt
        {"id": "a", "response": "a second sample"},  # duplicate: only the first is judged
        {"prompt": "Not a task prompt.", "response": "x"},  # unmatched
    ]
    out = tmp_path / "out.jsonl"
    result, summary = run(write(tmp_path / "t.jsonl", TASKS),
                          write(tmp_path / "r.jsonl", responses), "--out", out)
    assert result.exit_code == 0, result.output
    assert summary["n"] == 3 and summary["n_instructions"] == 4
    assert summary["missing_responses"] == 1  # task c
    assert summary["unmatched_responses"] == 1 and summary["duplicate_responses"] == 1
    # a passes; b fails strict (2 lines) but passes loose (title line dropped); c is missing
    assert summary["prompt_level_strict_acc"] == pytest.approx(1 / 3)
    assert summary["prompt_level_loose_acc"] == pytest.approx(2 / 3)
    assert summary["inst_level_strict_acc"] == pytest.approx(2 / 4)
    assert summary["inst_level_loose_acc"] == pytest.approx(3 / 4)
    assert "1 task(s) have no response (counted as failures): c" in result.stderr
    rows = {row["id"]: row for row in map(json.loads, out.open())}
    b = rows["b"]["constraints"][0]
    assert (b["strict"], b["loose"]) == (False, True)
    assert b["reason"] == "2 lines; at most 1 allowed"
    assert b["loose_reason"] == "1 line; <= 1 required (loose: without first line)"
    assert rows["b"]["passed"] is False  # --out judges by strict unless --loose

    _, _ = run(write(tmp_path / "t.jsonl", TASKS), tmp_path / "r.jsonl", "--out", out, "--loose")
    assert {r["id"]: r["passed"] for r in map(json.loads, out.open())}["b"] is True


def test_ifeval_and_ifbench_raw_formats(tmp_path):
    ifeval = [{"key": 7, "prompt": "No commas please.", "instruction_id_list":
               ["punctuation:no_comma", "length_constraints:number_words"],
               "kwargs": [{}, {"num_words": 3, "relation": "at least", "keywords": None}]}]
    ifbench = [{"key": "7", "prompt": "No commas please.",
                "instruction_id_list":
                    "['punctuation:no_comma', 'length_constraints:number_words']",
                "kwargs": "[{}, {'num_words': 3, 'relation': 'at least', 'keywords': None}]"}]
    responses = write(tmp_path / "r.jsonl", [{"key": 7, "response": "one two three four"}])
    for rows in (ifeval, ifbench):
        result, summary = run(write(tmp_path / "t.jsonl", rows), responses)
        assert result.exit_code == 0, result.output
        assert summary["prompt_level_strict_acc"] == 1.0 and summary["missing_responses"] == 0


def test_free_text_without_a_judge_is_counted_as_undecided(tmp_path):
    tasks = [{"id": "s", "prompt": "A sad story.", "constraints": [
        {"id": "free_text", "kwargs": {"text": "The story is sad."}}]}]
    result, summary = run(write(tmp_path / "t.jsonl", tasks),
                          write(tmp_path / "r.jsonl", [{"id": "s", "response": "She wept."}]))
    assert summary["prompt_level_strict_acc"] == 0.0
    assert summary["undecided_strict"] == summary["undecided_loose"] == 1


def test_unknown_ids_stop_with_the_accepted_list_or_are_skipped(tmp_path):
    tasks = write(tmp_path / "t.jsonl", [*TASKS, {"id": "d", "prompt": "p", "constraints": [
        {"id": "count:keyword_multiple", "kwargs": {}}]}])
    responses = write(tmp_path / "r.jsonl", [{"id": "a", "response": HAIKU}])
    result, _ = run(tasks, responses)
    assert result.exit_code == 2
    assert "unknown constraint id 'count:keyword_multiple'" in result.stderr
    assert "did you mean 'count:keywords_multiple'" in result.stderr  # IFBench's id is known
    assert "creative:word_range" in result.stderr and "t.jsonl:4" in result.stderr
    result, summary = run(tasks, responses, "--skip-invalid")
    assert result.exit_code == 0 and summary["skipped_tasks"] == 1 and summary["n"] == 3


def test_missing_file_is_a_user_error(tmp_path):
    result, _ = run(tmp_path / "nope.jsonl", tmp_path / "nope2.jsonl")
    assert result.exit_code == 2 and "file not found" in result.stderr
