"""augment-constraints: diverse, compatible, valid constraints; seeded; bundled set is current;
bad lines reported by reason with line numbers; a task's own constraints kept; and (hypothesis)
every augmented task can be met by some response."""

from __future__ import annotations

import json
import random
from collections import Counter
from importlib.resources import files

import pytest
from typer.testing import CliRunner

from quillrl.cli import app
from quillrl.constraints import read_tasks, verify
from quillrl.constraints.constrained_tasks import augment_file
from quillrl.constraints.templates import (
    CONFLICTS, FAMILIES, GROUP_OF, TEMPLATES, augment_prompt, clean_prompt, draw_constraints)
from quillrl.errors import DataError


def test_every_template_draws_a_valid_constraint_and_says_it():
    rng = random.Random(0)
    for t in TEMPLATES:
        for _ in range(5):
            kwargs = t.draw(rng)
            text, constraints = augment_prompt("A fox.", random.Random(1), 1, allowed=(t.id,))
            assert constraints[0].id == t.id and t.say(kwargs).strip()


def test_draws_are_diverse_and_never_conflict():
    rng = random.Random(3)
    seen = Counter()
    for _ in range(500):
        drawn = draw_constraints(rng, 3, families=FAMILIES)
        ids = [t.id for t, _ in drawn]
        assert 1 <= len(ids) <= 3 and len(set(ids)) == len(ids)
        groups = [t.group for t, _ in drawn if t.group]
        assert len(groups) == len(set(groups)), ids
        for a in groups:
            for b in groups:
                assert frozenset({a, b}) not in CONFLICTS or a == b, ids
        seen.update(ids)
    assert set(seen) == {t.id for t in TEMPLATES}  # every type shows up


@pytest.mark.parametrize("raw,clean", [("[WP] A dragon.", "A dragon."), ("  [ EU ]  Rain  ", "Rain"),
                                       ("No tag here.", "No tag here.")])
def test_clean_prompt(raw, clean):
    assert clean_prompt(raw) == clean


def test_augment_file_is_seeded_per_prompt_and_counts(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "prompt": "[WP] A dragon."}\n{"id": "b", "prompt": "A dragon."}\n'
                   'not json\n{"id": "c"}\n{"id": "d", "prompt": "The sea."}\n')
    with pytest.raises(DataError, match=r"in.jsonl:3: not valid JSON"):
        augment_file(src, tmp_path / "out.jsonl", seed=5)
    summary = augment_file(src, tmp_path / "out.jsonl", seed=5, skip_invalid=True)
    assert summary["written"] == 2 and summary["duplicates"] == 1
    assert summary["duplicate_lines"] == [{"line": 2, "first_line": 1}]
    assert summary["skipped_by_reason"] == {"not valid JSON": 1, "missing field 'prompt'": 1}
    assert [(s["line"], s["field"]) for s in summary["skipped_lines"]] == [(3, None), (4, "prompt")]
    first = (tmp_path / "out.jsonl").read_text()
    # adding another prompt does not change the tasks already drawn for the others
    src.write_text(src.read_text() + '{"id": "e", "prompt": "A new prompt."}\n')
    augment_file(src, tmp_path / "out2.jsonl", seed=5, skip_invalid=True)
    assert (tmp_path / "out2.jsonl").read_text().startswith(first)


def test_a_tasks_own_constraints_are_kept_and_never_contradicted(tmp_path):
    src = tmp_path / "in.jsonl"
    own = [{"id": "creative:word_range", "kwargs": {"min_words": 50, "max_words": 90}},
           {"id": "detectable_format:title", "kwargs": {}}]
    src.write_text(json.dumps({"id": "t", "prompt": "A fox. Give it a title.", "constraints": own})
                   + "\n" + json.dumps({"key": 9, "prompt": "Write 300+ words.",
                                        "instruction_id_list": ["length_constraints:number_words"],
                                        "kwargs": [{"num_words": 300, "relation": "at least"}]})
                   + "\n")
    for seed in range(30):
        augment_file(src, tmp_path / "out.jsonl", seed=seed, families=FAMILIES, max_per_task=4)
        first, second = read_tasks(tmp_path / "out.jsonl").records
        assert [c.model_dump() for c in first.constraints[:2]] == own
        assert first.prompt.startswith("A fox. Give it a title.")
        for task in (first, second):
            groups = [GROUP_OF.get(c.id) for c in task.constraints]
            assert "length" not in groups[1 if task is second else 2:]  # no second length
            assert not ({"shape", "title"} <= set(groups))
        assert second.constraints[0].id == "length_constraints:number_words"


def test_bad_lines_stop_or_are_listed_with_line_numbers(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"prompt": "A fox."}\n[1, 2]\n{"prompt": 7}\n'
                   '{"id": "x", "prompt": "p", "constraints": [{"id": "creative:nope"}]}\n')
    out = tmp_path / "out.jsonl"
    runner = CliRunner()
    stop = runner.invoke(app, ["data", "augment-constraints", "--in", str(src), "--out", str(out)])
    assert stop.exit_code == 2 and "in.jsonl:2: not a JSON object" in stop.stderr
    go = runner.invoke(app, ["data", "augment-constraints", "--in", str(src), "--out", str(out),
                             "--skip-invalid"])
    assert go.exit_code == 0, go.output
    summary = json.loads(go.stdout.strip().splitlines()[-1])
    assert summary["written"] == 1 and summary["skipped"] == 3
    assert summary["skipped_by_reason"] == {"not a JSON object": 1,
                                            "invalid field 'prompt'": 1,
                                            "unknown constraint id": 1}
    for line in (2, 3, 4):
        assert f"in.jsonl:{line}: skipped:" in go.stderr


def test_family_option_draws_ifbench_ids(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"prompt": f"Story {i}."}) + "\n" for i in range(30)))
    out = tmp_path / "tasks.jsonl"
    result = CliRunner().invoke(app, ["data", "augment-constraints", "--in", str(src), "--out",
                                      str(out), "--family", "ifbench"])
    assert result.exit_code == 0, result.output
    ids = {c.id for task in read_tasks(out).records for c in task.constraints}
    assert ids == {t.id for t in TEMPLATES if t.family == "ifbench"}
    bad = CliRunner().invoke(app, ["data", "augment-constraints", "--in", str(src), "--out",
                                   str(out), "--family", "nope"])
    assert bad.exit_code == 2 and "ifbench" in bad.output


def test_cli_writes_tasks_the_verifier_accepts(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": str(i), "prompt": f"Story {i}."}) + "\n" for i in range(20)))
    out = tmp_path / "tasks.jsonl"
    result = CliRunner().invoke(app, ["data", "augment-constraints", "--in", str(src), "--out", str(out),
                                      "--seed", "1", "--max-per-task", "2"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["written"] == 20
    for task in read_tasks(out).records:
        assert 1 <= len(task.constraints) <= 2
        assert verify("a plain response.", task.constraints, prompt=task.prompt).results  # runs every check
    bad = CliRunner().invoke(app, ["data", "augment-constraints", "--in", str(src), "--out", str(out),
                                   "--only", "creative:nope"])
    assert bad.exit_code == 2 and "creative:word_range" in bad.output


def test_bundled_task_set_is_what_the_command_makes(tmp_path):
    """resources/creative_tasks.jsonl = augment-constraints of resources/creative_prompts.jsonl, seed 0."""
    res = files("quillrl.resources")
    augment_file(str(res / "creative_prompts.jsonl"), tmp_path / "tasks.jsonl", seed=0)
    assert (tmp_path / "tasks.jsonl").read_text() == (res / "creative_tasks.jsonl").read_text()
