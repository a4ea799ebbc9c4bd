"""Resuming through the one writer (``quillrl.data.ResumableJsonl``): every record is keyed on what
shaped it, so a rerun over changed inputs is refused, naming what changed, never answered from
stale records; a file that is not ours is refused untouched. Each case below failed before the
writer (issue #23, section 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quillrl.cli import app
from quillrl.data import ResumableJsonl
from quillrl.errors import ConfigError, DataError

runner = CliRunner()


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def summary(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def sides(tmp_path: Path, n: int = 10) -> tuple[Path, Path, Path]:
    """Tasks and two responses files where A is longer (so wins under baseline:length) on 9 of
    the 10 tasks and shorter on the last."""
    tasks = write(tmp_path / "tasks.jsonl", [{"id": f"t{i}", "prompt": f"Write {i}.",
                                               "constraints": []} for i in range(n)])

    def resp(i, words):
        return {"id": f"t{i}", "sample": 0, "prompt": f"Write {i}.", "response": "w " * words,
                "model": "m", "finish_reason": "stop", "tokens": words}

    a = write(tmp_path / "a.jsonl", [resp(i, 20 if i < n - 1 else 2) for i in range(n)])
    b = write(tmp_path / "b.jsonl", [resp(i, 5) for i in range(n)])
    return tasks, a, b


def winrate(tasks, a, b, judgments, *extra):
    return runner.invoke(app, ["eval", "winrate", "--tasks", str(tasks), "--a", str(a), "--b", str(b),
                               "--judge", "baseline:length", "--judgments", str(judgments), *extra])


# -- eval winrate --judgments ----------------------------------------------------------------------

def test_winrate_with_a_and_b_swapped_is_refused_not_answered_from_old_verdicts(tmp_path):
    tasks, a, b = sides(tmp_path)
    judgments = tmp_path / "j.jsonl"
    assert summary(winrate(tasks, a, b, judgments))["win_rate"] == 0.9
    before = judgments.read_bytes()
    swapped = winrate(tasks, b, a, judgments)  # before the writer: exit 0, win rate 0.9
    assert swapped.exit_code == 2
    assert "A response and B response" in swapped.stderr and "'t0#0'" in swapped.stderr
    assert judgments.read_bytes() == before
    assert summary(winrate(tasks, b, a, tmp_path / "fresh.jsonl"))["win_rate"] == pytest.approx(0.1)


def test_a_file_against_itself_is_not_answered_from_a_against_b(tmp_path):
    tasks, a, b = sides(tmp_path)
    judgments = tmp_path / "j.jsonl"
    summary(winrate(tasks, a, b, judgments))
    itself = winrate(tasks, a, a, judgments)  # before: exit 0, win rate 0.9
    assert itself.exit_code == 2 and "B response" in itself.stderr
    assert summary(winrate(tasks, a, a, tmp_path / "fresh.jsonl"))["win_rate"] == 0.5


def test_winrate_judgments_keyed_on_the_task_prompt_too(tmp_path):
    tasks, a, b = sides(tmp_path)
    judgments = tmp_path / "j.jsonl"
    summary(winrate(tasks, a, b, judgments))
    rows = [json.loads(x) for x in tasks.read_text().splitlines()]
    rows[3]["prompt"] = "Write something else."
    write(tasks, rows)
    changed = winrate(tasks, a, b, judgments)
    assert changed.exit_code == 2 and "'t3#0'" in changed.stderr and "task prompt" in changed.stderr


def test_winrate_refuses_a_foreign_file_untouched(tmp_path):
    tasks, a, b = sides(tmp_path)
    foreign = tmp_path / "notes.jsonl"
    foreign.write_bytes(b'{"note": "mine"}\n{"note": "half a li')  # not ours, last line unended
    before = foreign.read_bytes()
    result = winrate(tasks, a, b, foreign)  # before: its last line was cut, then refused
    assert result.exit_code == 2 and "left untouched" in result.stderr
    assert foreign.read_bytes() == before


# -- eval policy ---------------------------------------------------------------------------------

def test_eval_policy_judgments_are_keyed_on_the_responses(tmp_path, tiny_model_dir):
    tasks, _, _ = sides(tmp_path, n=3)
    out = tmp_path / "run"
    args = ["eval", "policy", "--base", str(tiny_model_dir), "--trained", str(tiny_model_dir),
            "--tasks", str(tasks), "--judge", "baseline:length", "--out-dir", str(out),
            "--max-new-tokens", "4", "--resamples", "100"]
    summary(runner.invoke(app, args))
    # the trained side's responses change (same model and settings, so generate keeps them)
    trained = out / "responses-trained.jsonl"
    rows = [json.loads(x) for x in trained.read_text().splitlines()]
    for r in rows:
        r["response"] = "a much longer answer than before " * 3
    write(trained, rows)
    again = runner.invoke(app, args)  # before: the old verdicts were reused, exit 0
    assert again.exit_code == 2 and "A response" in again.stderr


# -- generate ------------------------------------------------------------------------------------

def test_generate_refuses_changed_prompts_under_the_same_ids(tmp_path, tiny_model_dir):
    from quillrl.data import WritingTask
    from quillrl.eval.generate import generate_responses

    out = tmp_path / "r.jsonl"
    tasks = [WritingTask(id=f"t{i}", prompt=f"Write {i}.") for i in range(3)]
    generate_responses(str(tiny_model_dir), tasks, out, max_new_tokens=3, progress=False)
    before = out.read_bytes()
    changed = [tasks[0], WritingTask(id="t1", prompt="Another prompt."), tasks[2]]
    with pytest.raises(ConfigError, match=r"\('t1', 0\).*another prompt"):
        generate_responses(str(tiny_model_dir), changed, out, max_new_tokens=3, progress=False)
    assert out.read_bytes() == before


def test_generate_refuses_a_foreign_file_untouched(tmp_path, tiny_model_dir):
    tasks = write(tmp_path / "tasks.jsonl", [{"id": "t0", "prompt": "Hi.", "constraints": []}])
    foreign = tmp_path / "out.jsonl"
    foreign.write_bytes(b'{"id": "x", "other": 1}\nnot json and no newline')
    before = foreign.read_bytes()
    result = runner.invoke(app, ["generate", "--model", str(tiny_model_dir), "--tasks", str(tasks),
                                 "--out", str(foreign), "--max-new-tokens", "2"])
    assert result.exit_code == 2 and "left untouched" in result.stderr
    assert foreign.read_bytes() == before


# -- judge and distill ---------------------------------------------------------------------------

def test_judge_refuses_pairs_whose_texts_changed(tmp_path):
    pairs = write(tmp_path / "pairs.jsonl", [{"id": f"p{i}", "prompt": "P", "chosen": "a " * (i + 3),
                                              "rejected": "b b"} for i in range(4)])
    out = tmp_path / "out.jsonl"
    args = ["judge", "--pairs", str(pairs), "--judge", "baseline:length", "--out", str(out)]
    summary(runner.invoke(app, args))
    rows = [json.loads(x) for x in pairs.read_text().splitlines()]
    rows[2]["chosen"], rows[2]["rejected"] = rows[2]["rejected"], rows[2]["chosen"]
    write(pairs, rows)
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2 and "'p2'" in refused.stderr
    assert "chosen and rejected" in refused.stderr


def test_distill_refuses_pairs_whose_texts_changed(tmp_path):
    from test_distill import teacher, write_pairs

    from quillrl.distill import distill

    pairs, out = write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "sft.jsonl"
    distill(pairs, teacher(), out, limit=2)
    rows = [json.loads(x) for x in pairs.read_text().splitlines()]
    rows[0]["prompt"] += " (edited)"
    write(pairs, rows)
    with pytest.raises(ConfigError, match="'p0'.*another prompt"):
        distill(pairs, teacher(), out)


# -- the writer itself ---------------------------------------------------------------------------

def test_writer_cuts_only_a_cut_line_of_its_own(tmp_path):
    path = tmp_path / "o.jsonl"
    with ResumableJsonl(path, settings={"judge": "j"}) as out:
        out.write({"id": "a", "judge": "j"}, inputs={"prompt": "x"})
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"id": "b", "ju')
    with ResumableJsonl(path, settings={"judge": "j"}) as out:
        assert out.truncated_lines == 1 and set(out.records) == {"a"}
    assert path.read_bytes() == whole
    path.write_bytes(whole + b"garbage")
    with pytest.raises(DataError, match="left untouched"):
        ResumableJsonl(path, settings={"judge": "j"})
    assert path.read_bytes() == whole + b"garbage"
    path.write_bytes(whole)
    with pytest.raises(ConfigError, match="judge='j', this run asks for judge='k'"):
        ResumableJsonl(path, settings={"judge": "k"})
    assert path.read_bytes() == whole


# -- bundled task sets (issue #22, section 4) ------------------------------------------------------

def test_generate_reads_a_bundled_task_set(tmp_path, tiny_model_dir):
    out = tmp_path / "r.jsonl"
    result = runner.invoke(app, ["generate", "--model", str(tiny_model_dir), "--tasks",
                                 "bundled:demo_heldout", "--out", str(out), "--limit", "1",
                                 "--max-new-tokens", "2"])
    assert summary(result)["n_tasks"] == 1  # before: "file not found"
