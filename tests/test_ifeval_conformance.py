"""IFEval parity: our verdicts on GPT-4's 541 responses equal lm-eval's own, instruction by
instruction, strict and loose; the CLI reports them; and where the reference figures come from.

Reference figures (shared/data/README.md) for lm-eval 0.4.13 on these files:
76.89 / 83.45 / 79.67 / 85.49. Two things make them what they are:

1. One prompt (key 2785) has no exactly matching response (the response file's prompt asks for
   "at least one placeholder", the task for 3), so it gets no response and fails, as the
   figures assume. Joined to that near-identical response instead, no outcome gives them.
2. Keys 1122 and 1129 ask for letter "#" and "!", which lm-eval replaces by a *random* ASCII
   letter, drawn separately for strict and loose. The reference figures are the outcome where
   exactly one of the two fails strict and both pass loose (about 1 run in 5). We seed that draw
   per constraint (one letter for both modes), so our figures are fixed: our letters ('s' for
   1122, 'y' for 1129) both pass, giving 77.08 / 83.57 / 79.67 / 85.49.
"""

from __future__ import annotations

import itertools
import json
import random
import string

import pytest

from quillrl.constraints import Constraint, verify

REFERENCE = (76.89, 83.45, 79.67, 85.49)  # lm-eval 0.4.13, one of its random outcomes
OURS = (77.08, 83.57, 79.67, 85.49)  # the outcome our seeded draws give, every run
RANDOM_LETTER_KEYS = {1122, 1129}


@pytest.fixture(scope="module")
def ifeval(shared_data):
    folder = shared_data / "ifeval"
    inputs = [json.loads(line) for line in (folder / "input_data.jsonl").open()]
    responses_path = folder / "input_response_data_gpt4_20231107_145030.jsonl"
    responses = [json.loads(line) for line in responses_path.open()]
    return folder / "input_data.jsonl", responses_path, inputs, responses


@pytest.fixture(scope="module")
def verdicts(ifeval):
    """Per prompt: (key, constraints, response or None, strict verdicts, loose verdicts)."""
    _, _, inputs, responses = ifeval
    by_prompt = {r["prompt"]: r["response"] for r in responses}
    rows = []
    for task in inputs:
        constraints = [Constraint(id=i, kwargs=k)
                       for i, k in zip(task["instruction_id_list"], task["kwargs"])]
        response = by_prompt.get(task["prompt"])
        strict = verify(response or "", constraints, prompt=task["prompt"])
        loose = verify(response or "", constraints, loose=True, prompt=task["prompt"])
        rows.append((task, constraints, response, [r.passed for r in strict.results],
                     [r.passed for r in loose.results]))
    return rows


def figures(rows) -> tuple[float, ...]:
    """IFEval's four accuracies in percent, from (strict list, loose list) per prompt."""
    flat_s = [v for s, _ in rows for v in s]
    flat_l = [v for _, l in rows for v in l]
    shares = (sum(all(s) for s, _ in rows) / len(rows), sum(flat_s) / len(flat_s),
              sum(all(l) for _, l in rows) / len(rows), sum(flat_l) / len(flat_l))
    return tuple(round(100 * x, 2) for x in shares)


def test_every_verdict_equals_lm_evals_own(verdicts):
    from lm_eval.tasks.ifeval import utils

    mismatches, random_keys = [], set()
    for task, constraints, response, strict, loose in verdicts:
        inp = utils.InputExample(key=task["key"], instruction_id_list=task["instruction_id_list"],
                                 prompt=task["prompt"], kwargs=task["kwargs"])
        seeds = [c.check.random_seed for c in constraints if c.check.substituted]
        assert len(seeds) <= 1  # then seeding before each call gives lm-eval our draw
        if seeds:
            random_keys.add(task["key"])
        theirs = []
        for lm_eval_test in (utils.test_instruction_following_strict,
                             utils.test_instruction_following_loose):
            if seeds:
                random.seed(seeds[0])
            theirs.append(lm_eval_test(inp, response or "").follow_instruction_list)
        if [strict, loose] != theirs:
            mismatches.append((task["key"], task["instruction_id_list"], strict, loose, theirs))
    assert mismatches == []
    assert random_keys == RANDOM_LETTER_KEYS
    assert sum(len(row[3]) for row in verdicts) == 834


def test_missing_response_and_our_fixed_figures(verdicts):
    missing = [task["key"] for task, _, response, _, _ in verdicts if response is None]
    assert missing == [2785]
    assert figures([(s, l) for *_, s, l in verdicts]) == OURS


def test_reference_figures_are_one_outcome_of_lm_evals_random_letters(ifeval, verdicts):
    _, _, _, responses = ifeval
    near_match = next(r["response"] for r in responses
                      if r["prompt"].startswith("What is inside Shinto shrines?"))

    def outcomes(fill_missing: bool) -> set[tuple[float, ...]]:
        """Every figure lm-eval can report: each random letter drawn anew for strict and loose."""
        base, options = [], []
        for task, constraints, response, strict, loose in verdicts:
            if response is None and fill_missing:
                response = near_match
                strict = verify(response, constraints).results
                loose = verify(response, constraints, loose=True).results
                strict, loose = [r.passed for r in strict], [r.passed for r in loose]
            base.append((strict, loose))
            for j, c in enumerate(constraints):
                if c.check.substituted:
                    draws = [Constraint(id=c.id, kwargs={**c.kwargs, "letter": letter})
                             for letter in string.ascii_lowercase]
                    s = {verify(response, [d]).passed for d in draws}
                    lo = {verify(response, [d], loose=True).passed for d in draws}
                    options.append([(len(base) - 1, j, a, b) for a in s for b in lo])
        found = set()
        for combo in itertools.product(*options):
            rows = [(list(s), list(lo)) for s, lo in base]
            for i, j, a, b in combo:
                rows[i][0][j], rows[i][1][j] = a, b
            found.add(figures(rows))
        return found

    as_failure = outcomes(fill_missing=False)
    assert REFERENCE in as_failure and OURS in as_failure
    assert REFERENCE not in outcomes(fill_missing=True)


def test_cli_end_to_end(ifeval, tmp_path):
    from typer.testing import CliRunner

    from quillrl.cli import app

    tasks, responses, inputs, _ = ifeval
    out = tmp_path / "verdicts.jsonl"
    result = CliRunner().invoke(app, ["verify", str(tasks), str(responses), "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["n"] == 541 and summary["n_instructions"] == 834
    got = tuple(round(100 * summary[k], 2) for k in (
        "prompt_level_strict_acc", "inst_level_strict_acc",
        "prompt_level_loose_acc", "inst_level_loose_acc"))
    assert got == OURS
    assert summary["missing_responses"] == 1 and summary["unmatched_responses"] == 1
    assert summary["undecided_strict"] == summary["undecided_loose"] == 0
    lines = [json.loads(line) for line in out.open()]
    assert [line["id"] for line in lines] == [str(t["key"]) for t in inputs]
    missing = next(line for line in lines if line["id"] == "2785")
    assert missing["has_response"] is False and missing["passed"] is False
    assert all(c["reason"] == "no response" for c in missing["constraints"])
    first = lines[0]["constraints"][2]
    assert first["id"] == "length_constraints:number_words" and first["strict"] is False
    assert first["reason"] == "not followed: Answer with at least 300 words."
