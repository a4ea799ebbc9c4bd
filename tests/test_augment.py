"""augment-constraints: diverse, compatible, valid constraints; seeded; bundled set is current."""

from __future__ import annotations

import json
import random
from collections import Counter
from importlib.resources import files

import pytest
from typer.testing import CliRunner

from quillrl.cli import app
from quillrl.constraints import verify
from quillrl.constraints.augment import CONFLICTS, TEMPLATES, augment_prompt, clean_prompt, draw_constraints
from quillrl.data import read_tasks
from quillrl.data.augment import augment_file


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
        drawn = draw_constraints(rng, 3)
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
    summary = augment_file(src, tmp_path / "out.jsonl", seed=5)
    assert summary["written"] == 2 and summary["duplicates"] == 1
    assert summary["skipped_bad_json"] == 1 and summary["skipped_no_prompt"] == 1
    first = (tmp_path / "out.jsonl").read_text()
    # adding another prompt does not change the tasks already drawn for the others
    src.write_text(src.read_text() + '{"id": "e", "prompt": "A new prompt."}\n')
    augment_file(src, tmp_path / "out2.jsonl", seed=5)
    assert (tmp_path / "out2.jsonl").read_text().startswith(first)


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
