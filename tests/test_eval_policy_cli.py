"""`eval constraints`, `eval winrate` and `eval policy`: one CPU smoke run each, plus the bad
inputs the issue lists (unknown ids named, tasks without constraints counted apart, different
task sets on the two sides, a resumed judgments file, a bad judge spec)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from quillrl.cli import app

runner = CliRunner()

TASKS = [
    {"id": "t1", "prompt": "Write about the sea.", "constraints": [
        {"id": "creative:word_range", "kwargs": {"max_words": 5}}]},
    {"id": "t2", "prompt": "Write about a cat.", "constraints": [
        {"id": "creative:ends_with", "kwargs": {"text": "The end."}},
        {"id": "punctuation:no_comma", "kwargs": {}}]},
    {"id": "t3", "prompt": "Write freely.", "constraints": []},
    {"id": "t4", "prompt": "Write about rain.", "constraints": [
        {"id": "creative:forbid_words", "kwargs": {"words": ["wet"]}}]},
]


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def resp(tid, text, sample=0, finish="stop"):
    return {"id": tid, "sample": sample, "prompt": "p", "response": text, "model": "m",
            "finish_reason": finish, "tokens": len(text.split())}


def summary(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_eval_constraints_rates_by_family_and_id(tmp_path):
    tasks = write(tmp_path / "tasks.jsonl", TASKS)
    responses = write(tmp_path / "r.jsonl", [
        resp("t1", "short sea"),                          # passes
        resp("t1", "a b c d e f g", sample=1, finish="length"),  # 7 words: fails
        resp("t2", "cats purr. The end."),                # both pass
        resp("t3", "anything"),                           # no constraints: counted apart
        resp("t4", "it was wet"),                         # fails
        resp("zz9", "an id no task has"),                 # unmatched: counted and named
    ])
    out, report = tmp_path / "verdicts.jsonl", tmp_path / "rep"
    result = runner.invoke(app, ["eval", "constraints", "--tasks", str(tasks), "--responses",
                                 str(responses), "--out", str(out), "--report-dir", str(report)])
    s = summary(result)
    assert (s["n"], s["pass_rate"], s["no_constraints"]) == (4, 0.5, 1)
    assert s["ci_low"] <= 0.5 <= s["ci_high"]
    assert s["by_family"]["creative"]["n"] == 4 and s["by_family"]["ifeval"]["pass_rate"] == 1.0
    assert s["by_constraint"]["creative:word_range"]["pass_rate"] == 0.5
    assert s["unmatched_responses"] == 1 and s["unmatched_ids"] == ["zz9"]
    assert "zz9" in result.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["passed"] for r in rows] == [True, False, True, None, False]
    assert rows[1]["constraints"][0]["reason"] == "7 words; at most 5 allowed"
    assert (report / "pass_rates.png").stat().st_size > 0


def test_eval_constraints_names_a_file_that_matches_no_task(tmp_path):
    tasks = write(tmp_path / "tasks.jsonl", TASKS)
    responses = write(tmp_path / "r.jsonl", [resp("x1", "a"), resp("x2", "b")])
    result = runner.invoke(app, ["eval", "constraints", "--tasks", str(tasks), "--responses",
                                 str(responses)])
    assert result.exit_code == 2
    assert "none of its 2 responses matches a task" in result.stderr and "x1" in result.stderr


def _sides(tmp_path):
    tasks = write(tmp_path / "tasks.jsonl", TASKS)
    a = write(tmp_path / "a.jsonl", [
        resp("t1", "one two three four five six"),        # longer: A wins under baseline:length
        resp("t2", "same length here"),                   # tie
        resp("t3", "x"),                                   # shorter: A loses
        resp("t4", "it rained and rained", finish="length"),  # only in A (B lacks t4)
    ])
    b = write(tmp_path / "b.jsonl", [
        resp("t1", "one two"), resp("t2", "equal words here"), resp("t3", "y z"),
        resp("t1", "a second sample only B has", sample=1),
    ])
    return tasks, a, b


def test_eval_winrate_pairs_common_keys_and_counts_leftovers(tmp_path):
    tasks, a, b = _sides(tmp_path)
    judgments = tmp_path / "j.jsonl"
    args = ["eval", "winrate", "--tasks", str(tasks), "--a", str(a), "--b", str(b),
            "--judge", "baseline:length", "--judgments", str(judgments)]
    s = summary(runner.invoke(app, args))
    assert (s["n"], s["wins"], s["ties"], s["losses"], s["invalid"]) == (3, 1, 1, 1, 0)
    assert s["win_rate"] == 0.5 and s["ci_low"] <= 0.5 <= s["ci_high"]
    assert (s["only_a"], s["only_a_ids"], s["only_b"], s["only_b_ids"]) == (1, ["t4#0"], 1, ["t1#1"])
    assert s["swap"] is False  # a baseline has one way of judging
    assert s["hacking"]["length_preference_spearman"] == 1.0  # the length judge is all length
    assert 0 <= s["lc_win_rate"] <= 1
    first = judgments.read_text()
    # a rerun judges nothing new and gives the same figures
    again = summary(runner.invoke(app, args))
    assert judgments.read_text() == first and again["win_rate"] == s["win_rate"]
    # another judge on the same file is refused, with what to do
    other = runner.invoke(app, args[:-4] + ["--judge", "baseline:random", "--judgments", str(judgments)])
    assert other.exit_code == 2 and "use another --out" in other.stderr


def test_eval_winrate_bad_judge_spec_lists_the_accepted_forms(tmp_path):
    tasks, a, b = _sides(tmp_path)
    result = runner.invoke(app, ["eval", "winrate", "--tasks", str(tasks), "--a", str(a),
                                 "--b", str(b), "--judge", "genrn:local:x"])
    assert result.exit_code == 2
    assert "Accepted forms" in result.stderr and "baseline:length" in result.stderr


def test_eval_policy_smoke_on_a_tiny_model(tmp_path, tiny_model_dir):
    tasks = write(tmp_path / "tasks.jsonl", TASKS)
    out = tmp_path / "eval"
    args = ["eval", "policy", "--base", str(tiny_model_dir), "--trained", str(tiny_model_dir),
            "--tasks", str(tasks), "--judge", "baseline:length", "--out-dir", str(out),
            "--max-new-tokens", "6", "--n", "2", "--temperature", "1.0", "--resamples", "200"]
    s = summary(runner.invoke(app, args))
    assert s["n"] == 8 and s["tasks"] == 4 and s["no_constraints"] == 2
    for key in ("pass_rate_base", "pass_rate_trained", "pass_rate_diff", "diff_ci_low",
                "diff_ci_high", "win_rate", "ci_low", "ci_high", "lc_win_rate",
                "mean_words_base", "mean_words_trained"):
        assert key in s
    assert s["pass_rate_diff"] == s["pass_rate_trained"] - s["pass_rate_base"]
    assert s["diff_ci_low"] <= s["pass_rate_diff"] <= s["diff_ci_high"]
    report = (out / "report.md").read_text()
    assert "near noise" in report and "exact rule checks" in report
    for png in ("lengths.png", "pass_rates.png", "win_rate.png"):
        assert (out / png).stat().st_size > 0
    # everything is cached: a rerun generates and judges nothing and reports the same
    before = {p.name: p.read_text() for p in out.glob("*.jsonl")}
    assert summary(runner.invoke(app, args)) == s
    assert {p.name: p.read_text() for p in out.glob("*.jsonl")} == before


def test_demo_heldout_tasks_are_never_trained_on():
    from pathlib import Path

    import yaml

    from quillrl.constraints import read_tasks
    from quillrl.data import resolve_tasks_path
    from quillrl.train.policy_run import PolicyConfig

    demo = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
    config = PolicyConfig.model_validate(yaml.safe_load(demo.read_text()))
    train = read_tasks(resolve_tasks_path(config.tasks)).records
    heldout = read_tasks(resolve_tasks_path("bundled:demo_heldout")).records
    assert len(train) == len(heldout) == 20
    assert not {t.prompt for t in train} & {t.prompt for t in heldout}
    assert not {t.id for t in train} & {t.id for t in heldout}
    assert all([c.id for c in t.constraints] == ["detectable_format:title"] for t in train + heldout)


def test_eval_policy_ifeval_adds_both_policies_scores(tmp_path, tiny_model_dir, shared_data, monkeypatch):
    monkeypatch.setenv("QUILLRL_DATA", str(shared_data))
    tasks = write(tmp_path / "tasks.jsonl", TASKS[:1])
    out = tmp_path / "eval"
    s = summary(runner.invoke(app, [
        "eval", "policy", "--base", str(tiny_model_dir), "--trained", str(tiny_model_dir),
        "--tasks", str(tasks), "--judge", "baseline:length", "--out-dir", str(out),
        "--max-new-tokens", "4", "--limit", "1", "--ifeval", "--resamples", "100"]))
    for side in ("base", "trained"):
        assert s["ifeval"][side]["n"] == 1 and "prompt_level_strict_acc" in s["ifeval"][side]
        assert (out / f"ifeval-{side}.jsonl").exists()


def test_eval_policy_refuses_a_spec_that_names_nothing_before_generating(tmp_path, tiny_model_dir):
    tasks = write(tmp_path / "tasks.jsonl", TASKS)
    out = tmp_path / "eval"
    result = runner.invoke(app, ["eval", "policy", "--base", str(tiny_model_dir), "--trained",
                                 str(tmp_path / "no-such-adapter"), "--tasks", str(tasks),
                                 "--judge", "baseline:length", "--out-dir", str(out)])
    assert result.exit_code == 2 and "Accepted forms" in result.stderr
    assert not (out / "responses-base.jsonl").exists()


def test_eval_winrate_judge_failure_mid_run_is_saved_and_resumed(tmp_path, monkeypatch):
    from quillrl.errors import BackendError
    from quillrl.judges import LengthJudge
    from quillrl.judges.options import JudgeOptions

    class DiesAfterOneBatch(LengthJudge):
        calls = 0

        def _compare_many(self, pairs):
            DiesAfterOneBatch.calls += 1
            if DiesAfterOneBatch.calls > 1:
                raise BackendError("server went away")
            return super()._compare_many(pairs)

    tasks, a, b = _sides(tmp_path)
    judgments = tmp_path / "j.jsonl"
    args = ["eval", "winrate", "--tasks", str(tasks), "--a", str(a), "--b", str(b),
            "--judge", "baseline:length", "--judgments", str(judgments), "--batch-size", "2"]
    real = JudgeOptions.build
    monkeypatch.setattr(JudgeOptions, "build", lambda self, spec: DiesAfterOneBatch())
    failed = runner.invoke(app, args)
    assert failed.exit_code == 2
    assert "server went away" in failed.stderr and "2 of 3 judgments are saved" in failed.stderr
    assert len(judgments.read_text().splitlines()) == 2
    monkeypatch.setattr(JudgeOptions, "build", real)
    s = summary(runner.invoke(app, args))  # the rerun judges only the third pair
    assert s["n"] == 3 and (s["wins"], s["ties"], s["losses"]) == (1, 1, 1)
    assert len(judgments.read_text().splitlines()) == 3
