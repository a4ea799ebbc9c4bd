"""`quillrl judge`: one line per pair, resumable, interrupt-safe, order recorded."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from quillrl.cli import app
from quillrl.judges import LengthJudge
from quillrl.judges.options import JudgeOptions

runner = CliRunner()


def write_pairs(path, n=10):
    rows = [{"id": f"p{i:02d}", "prompt": f"Story {i}.", "chosen": "good " * (10 + i),
             "rejected": "bad " * (3 + (i % 2) * 20)} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def lines(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def judge(*args: str):
    return runner.invoke(app, ["judge", *args])


def summary(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_writes_one_labelled_line_per_pair(tmp_path):
    pairs, out = write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "out.jsonl"
    result = judge("--pairs", str(pairs), "--judge", "baseline:length", "--out", str(out),
                   "--batch-size", "3")
    assert result.exit_code == 0, result.output
    rows = lines(out)
    assert [r["id"] for r in rows] == [f"p{i:02d}" for i in range(10)]
    for r in rows:
        assert r["judge"] == "baseline:length" and r["valid"] and r["error"] is None
        assert r["chosen_slot"] in ("A", "B")
        # chosen was shown in chosen_slot: p_chosen and label_correct are about the human label
        assert r["p_chosen"] == (r["p_a"] if r["chosen_slot"] == "A" else 1 - r["p_a"])
        assert r["label_correct"] == (r["verdict"] == r["chosen_slot"])
        assert {"raw", "orders", "cost", "entropy", "flipped"} <= set(r)
    assert {r["chosen_slot"] for r in rows} == {"A", "B"}  # both orders occur
    # odd pairs have a 23-word rejected text: longer-wins gets 5 of them wrong
    s = summary(result)
    assert (s["n"], s["written"], s["skipped_done"], s["accuracy"]) == (10, 10, 0, 0.5)
    assert s["interrupted"] is False and s["out"] == str(out)


def test_resume_skips_done_ids_and_repairs_a_cut_line(tmp_path):
    pairs, out = write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "out.jsonl"
    first = judge("--pairs", str(pairs), "--judge", "baseline:length", "--out", str(out),
                  "--limit", "4")
    assert first.exit_code == 0 and summary(first)["written"] == 4
    with out.open("a") as fh:  # a run killed mid-write leaves half a line
        fh.write('{"id": "p04", "judge": "baseline:len')
    again = judge("--pairs", str(pairs), "--judge", "baseline:length", "--out", str(out))
    assert again.exit_code == 0, again.output
    s = summary(again)
    assert (s["skipped_done"], s["written"], s["n"]) == (4, 6, 10)
    assert [r["id"] for r in lines(out)] == [f"p{i:02d}" for i in range(10)]
    done = judge("--pairs", str(pairs), "--judge", "baseline:length", "--out", str(out))
    assert summary(done)["written"] == 0 and summary(done)["n"] == 10
    assert summary(done)["accuracy"] == s["accuracy"]  # from the records already there


def test_resume_refuses_other_settings_and_restart_replaces(tmp_path):
    pairs, out = write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "out.jsonl"
    judge("--pairs", str(pairs), "--judge", "baseline:length", "--out", str(out), "--limit", "2")
    for other in (["--judge", "baseline:random"], ["--judge", "baseline:length", "--seed", "1"]):
        refused = judge("--pairs", str(pairs), "--out", str(out), *other)
        assert refused.exit_code == 2 and "--restart" in refused.stderr
        assert len(lines(out)) == 2  # untouched
    fresh = judge("--pairs", str(pairs), "--judge", "baseline:random", "--out", str(out),
                  "--restart")
    assert fresh.exit_code == 0 and summary(fresh)["written"] == 10
    assert {r["judge"] for r in lines(out)} == {"baseline:random"}


class InterruptedJudge(LengthJudge):
    """Judges one batch, then behaves as if the user pressed Ctrl-C."""

    def __init__(self):
        self.calls = 0

    def _compare_many(self, pairs):
        self.calls += 1
        if self.calls > 1:
            raise KeyboardInterrupt
        return super()._compare_many(pairs)


def test_ctrl_c_leaves_a_valid_file_that_resumes(tmp_path, monkeypatch):
    pairs, out = write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "out.jsonl"
    monkeypatch.setattr(JudgeOptions, "build", lambda self, spec: InterruptedJudge())
    stopped = judge("--pairs", str(pairs), "--judge", "baseline:length", "--out", str(out),
                    "--batch-size", "4")
    assert stopped.exit_code == 130
    assert summary(stopped)["interrupted"] is True and summary(stopped)["n"] == 4
    assert [r["id"] for r in lines(out)] == ["p00", "p01", "p02", "p03"]
    monkeypatch.undo()
    resumed = judge("--pairs", str(pairs), "--judge", "baseline:length", "--out", str(out))
    assert resumed.exit_code == 0 and summary(resumed)["written"] == 6
    assert len(lines(out)) == 10


def test_sample_is_seeded_and_scored_from_the_same_selection(tmp_path):
    pairs, out = write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "out.jsonl"
    result = judge("--pairs", str(pairs), "--judge", "baseline:length", "--out", str(out),
                   "--sample", "4", "--seed", "3")
    assert result.exit_code == 0, result.output
    ids = [r["id"] for r in lines(out)]
    assert len(ids) == 4 and ids == sorted(ids) and ids != ["p00", "p01", "p02", "p03"]
    other = judge("--pairs", str(pairs), "--judge", "baseline:length", "--restart",
                  "--out", str(tmp_path / "other.jsonl"), "--sample", "4", "--seed", "4")
    assert [r["id"] for r in lines(tmp_path / "other.jsonl")] != ids
    scored = runner.invoke(app, ["eval", "alignment", "--pairs", str(pairs), "--judgments",
                                 str(out), "--sample", "4", "--seed", "3", "--resamples", "100"])
    assert scored.exit_code == 0, scored.output
    assert summary(scored)["n"] == 4 and other.exit_code == 0


def test_bad_options_exit_2(tmp_path):
    pairs, out = write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "out.jsonl"
    for args, message in ((["--limit", "0"], "--limit"), (["--batch-size", "0"], "--batch-size"),
                          (["--limit", "2", "--sample", "2"], "not both")):
        result = judge("--pairs", str(pairs), "--judge", "baseline:length", "--out", str(out),
                       *args)
        assert result.exit_code == 2 and message in result.stderr


@pytest.mark.parametrize("swap", [False, True])
def test_genrm_lines_keep_each_orders_output(tmp_path, tiny_model_dir, swap):
    pairs, out = write_pairs(tmp_path / "pairs.jsonl", n=3), tmp_path / "out.jsonl"
    spec = f"genrm:local:{tiny_model_dir}"
    result = judge("--pairs", str(pairs), "--judge", spec, "--mode", "verdict",
                   "--device", "cpu", "--out", str(out), *(["--swap"] if swap else []))
    assert result.exit_code == 0, result.output
    for r in lines(out):
        assert (r["judge"], r["mode"], r["swap"]) == (spec, "verdict", swap)
        assert [o["order"] for o in r["orders"]] == (["AB", "BA"] if swap else ["AB"])
        assert all(o["raw"].startswith("P(A)=") for o in r["orders"])
        assert r["valid"] and 0 <= r["p_chosen"] <= 1 and r["cost"]["prompt_tokens"] > 0
        assert (r["flipped"] is not None) == swap
    assert summary(result)["position_consistency"] is not None or not swap
