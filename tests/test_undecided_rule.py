"""One task with a free_text constraint through training's reward path and evaluation's
verification, with the same verifier: the same passes and the same undecided count, by the one
rule (``quillrl.constraints.count_verdicts``; docs/design.md, "Undecided constraints"). Without
a verifier, the eval verbs refuse such tasks as ``train policy`` does."""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np
import pytest
from typer.testing import CliRunner

from quillrl.backends.base import Backend, ChatPrompt, UsageCounter
from quillrl.cli import app
from quillrl.data import Response, WritingTask
from quillrl.eval.constraint_rates import pass_rates, verdict_rows
from quillrl.eval.ifeval import summarize, verify_task
from quillrl.judges import FreeTextVerifier, make_judge
from quillrl.scoring.group_rewards import GroupRewards
from quillrl.scoring.reward_funcs import ConstraintPassReward

TASK = WritingTask(id="t", prompt="Write a sad story.", constraints=[
    {"id": "free_text", "kwargs": {"text": "The ending is sad."}},
    {"id": "creative:forbid_words", "kwargs": {"words": ["clown"]}}])
# the verifier's raw (P(Yes), P(No)) for each response: yes, no, no answer at all (undecided), yes
TABLE = {"She wept at the grave.": (0.7, 0.1), "They danced all night.": (0.05, 0.6),
         "The rain kept on.": (0.0, 0.0), "A clown wept at the grave.": (0.8, 0.1)}
TEXTS = list(TABLE)
EXPECTED_PASSED = [True, False, False, False]  # the clown fails forbid_words; rain is undecided


class YesNoBackend(Backend):
    """A deterministic verifier model: the (P(Yes), P(No)) of each response from TABLE."""

    name = "table"

    def __init__(self):
        self.usage = UsageCounter()

    def generate(self, prompts, params):
        raise AssertionError("the verifier never generates")

    def choice_probs(self, prompts: Sequence[ChatPrompt], choices: Sequence[str]) -> np.ndarray:
        response = [p.messages[1]["content"].split("<response>\n", 1)[1].split("\n</response>")[0]
                    for p in prompts]
        return np.array([TABLE[r] for r in response], dtype=float)


def test_training_and_evaluation_count_one_task_alike():
    verifier = FreeTextVerifier(YesNoBackend())
    # training: the dataset column is the JSON the trainer stores (train/policy_run.py)
    column = json.dumps([c.model_dump() for c in TASK.constraints])
    rewards = GroupRewards(make_judge("baseline:length"), strategy="round_robin",
                           free_text_verifier=verifier)
    batch = rewards.compute([TASK.prompt] * 4, TEXTS, [column] * 4, group_size=4)
    trl = ConstraintPassReward(free_text_verifier=verifier)(
        prompts=[TASK.prompt] * 4, completions=TEXTS, constraints=[column] * 4)
    # evaluation: eval constraints|winrate|policy's rows, and verify's
    responses = [Response(id="t", sample=i, response=text) for i, text in enumerate(TEXTS)]
    rows = verdict_rows([(TASK, r) for r in responses], free_text_verifier=verifier)
    rates = pass_rates(rows, n_resamples=100)
    verified = summarize([verify_task(TASK, r, verifier) for r in responses])

    assert batch.passed.tolist() == [r["passed"] for r in rows] == EXPECTED_PASSED
    assert trl == [float(p) for p in EXPECTED_PASSED]
    assert batch.constraint_unknown == rates["undecided"] == verified["undecided_strict"] == 1
    assert rates["undecided_responses"] == 1 and rates["undecided_ids"] == ["t free_text"]
    assert rates["pass_rate"] == 0.25
    assert rates["by_family"]["free_text"]["pass_rate"] == 0.5  # undecided is not a pass


def write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


@pytest.fixture
def files(tmp_path):
    tasks = write(tmp_path / "tasks.jsonl", [
        {"id": "plain", "prompt": "Write.", "constraints": []}, TASK.to_json_dict()])
    a = write(tmp_path / "a.jsonl", [{"id": "t", "response": TEXTS[0]},
                                     {"id": "plain", "response": "x"}])
    b = write(tmp_path / "b.jsonl", [{"id": "t", "response": TEXTS[1]},
                                     {"id": "plain", "response": "y"}])
    return tasks, a, b


@pytest.mark.parametrize("verb", ["constraints", "winrate", "policy"])
def test_eval_verbs_without_a_verifier_refuse_free_text_tasks(files, tmp_path, verb,
                                                              tiny_model_dir):
    tasks, a, b = files
    args = {"constraints": ["--responses", a],
            "winrate": ["--a", a, "--b", b, "--judge", "baseline:length"],
            "policy": ["--base", str(tiny_model_dir), "--trained", str(tiny_model_dir),
                       "--judge", "baseline:length", "--out-dir", str(tmp_path / "run")]}[verb]
    result = CliRunner().invoke(app, ["eval", verb, "--tasks", tasks, *args])
    assert result.exit_code == 2, result.output
    assert ("tasks.jsonl: task 't' has a free_text constraint, and no verifier is configured: "
            "set --free-text-verifier") in result.stderr
    assert not (tmp_path / "run" / "responses-base.jsonl").exists()  # refused before generating


def test_eval_constraints_judges_free_text_with_the_verifier_training_uses(files, tmp_path,
                                                                           tiny_model_dir):
    """The same backend spec in ``reward.free_text_verifier`` and ``--free-text-verifier``
    gives the same verdict on the same response."""
    from quillrl.judges.free_text import make_free_text_verifier

    tasks, a, _ = files
    spec = f"local:{tiny_model_dir}"
    out = tmp_path / "rows.jsonl"
    result = CliRunner().invoke(app, ["eval", "constraints", "--tasks", tasks, "--responses", a,
                                      "--free-text-verifier", spec, "--out", str(out),
                                      "--resamples", "100"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    (row,) = [json.loads(line) for line in out.open() if json.loads(line)["constraints"]]
    verdict = row["constraints"][0]
    assert verdict["id"] == "free_text" and verdict["passed"] is not None
    assert "not judged" not in verdict["reason"] and summary["undecided"] == 0
    verifier = make_free_text_verifier(spec)
    try:
        check = GroupRewards(make_judge("baseline:length"), free_text_verifier=verifier).check(
            TASK.prompt, TEXTS[0], TASK.constraints)
    finally:
        verifier.close()
    assert check[:2] == (row["passed"], row["undecided"])
    assert summary["pass_rate"] == float(row["passed"])
