"""Every importer on the real shared files: counts, content, the split by prompt, the data root."""

from __future__ import annotations

import json
from pathlib import Path
from collections import Counter

import pytest

from quillrl.constraints import read_tasks
from quillrl.data import read_pairs
from quillrl.data.importers import importer_names, resolve_data_root, run_import
from quillrl.data.pair_sources import parse_lamp_p
from quillrl.errors import DataError

# name: (kind, read, skipped by reason, written with --split all)
EXPECTED = {
    "ifeval": ("tasks", 541, {}, 541),
    # Every prompt is a task, the 7 without a sample response included.
    "ifbench": ("tasks", 300, {}, 300),
    "storyer": ("pairs", 1000, {}, 1000),
    "wq-style-mimic": ("pairs", 300, {"duplicate pair (order swapped)": 150}, 150),
    "lamp-p": ("pairs", 101, {"duplicate pair (order swapped)": 50}, 51),
    "wqrm": ("tasks", 101, {"plot is only a label, no instruction": 33}, 68),
    "writingbench-length": ("tasks", 222, {"Chinese query (length stated in characters)": 95,
                                           "no word-count requirement on the whole response": 28,
                                           "stated length over 20000 words": 1}, 98),
    "writingbench-format": ("tasks", 342, {}, 342),
    "writingbench-style": ("tasks", 395, {}, 395),
    "eqbench": ("tasks", 321, {"repeated seed modifier": 1}, 320),
}


def _read(kind, path):
    return (read_tasks if kind == "tasks" else read_pairs)(path)


def test_every_importer_is_covered():
    assert importer_names() == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_importer_counts_on_the_shared_files(shared_data, tmp_path, name):
    kind, read, skipped, written = EXPECTED[name]
    out = tmp_path / f"{name}.jsonl"
    summary = run_import(name, out, data_root=shared_data)
    assert (summary["kind"], summary["read"], summary["skipped_by_reason"],
            summary["written"]) == (kind, read, skipped, written)
    assert summary["skipped"] == sum(skipped.values())
    records = _read(kind, out)  # what was written reads back cleanly with our own reader
    assert len(records) == written and not records.skipped


def test_storyer_content(shared_data, tmp_path):
    run_import("storyer", tmp_path / "s.jsonl", data_root=shared_data)
    pairs = read_pairs(tmp_path / "s.jsonl")
    assert pairs[0].id == "storyer-0001" and pairs[0].source == "storyer"
    assert pairs[0].prompt.startswith("[WP] “You’ve reached 911.")
    assert pairs[0].chosen.startswith("Everyone always think that the end comes")
    assert "\n\nNobody knew who fired it." in pairs[0].chosen
    assert not any("<\\newline>" in p.chosen + p.rejected for p in pairs)
    assert pairs[0].margin == 1  # the source's extra field is carried along


def test_storyer_split_is_by_prompt_stable_and_about_80_20(shared_data, tmp_path):
    sides = {}
    for split in ("train", "test"):
        summary = run_import("storyer", tmp_path / f"{split}.jsonl", split=split, seed=0,
                             data_root=shared_data)
        sides[split] = read_pairs(tmp_path / f"{split}.jsonl")
        assert summary["written"] == len(sides[split])
    train, test = sides["train"], sides["test"]
    assert len(train) + len(test) == 1000
    assert {p.id for p in train}.isdisjoint(p.id for p in test)
    assert {p.prompt for p in train}.isdisjoint(p.prompt for p in test)
    assert len({p.prompt for p in train} | {p.prompt for p in test}) == 118
    assert 0.17 <= len(test) / 1000 <= 0.23
    # The same seed gives the same file, byte for byte.
    run_import("storyer", tmp_path / "again.jsonl", split="test", seed=0, data_root=shared_data)
    assert (tmp_path / "again.jsonl").read_bytes() == (tmp_path / "test.jsonl").read_bytes()
    # Another seed gives another split of the same size class.
    run_import("storyer", tmp_path / "seed1.jsonl", split="test", seed=1, data_root=shared_data)
    other = read_pairs(tmp_path / "seed1.jsonl")
    assert {p.prompt for p in other} != {p.prompt for p in test}
    assert 0.17 <= len(other) / 1000 <= 0.23


@pytest.mark.parametrize("name", ["eqbench", "wqrm", "wq-style-mimic", "lamp-p"])
def test_other_splits_keep_groups_together(shared_data, tmp_path, name):
    kind = EXPECTED[name][0]
    sides = {}
    for split in ("train", "test"):
        run_import(name, tmp_path / f"{split}.jsonl", split=split, data_root=shared_data)
        sides[split] = _read(kind, tmp_path / f"{split}.jsonl")
    total = EXPECTED[name][3]
    assert len(sides["train"]) + len(sides["test"]) == total
    assert 0.1 <= len(sides["test"]) / total <= 0.3
    group = (lambda r: r.prompt_key) if name == "eqbench" else (
        (lambda r: r.id) if name == "lamp-p" else (lambda r: r.prompt))
    assert {group(r) for r in sides["train"]}.isdisjoint(group(r) for r in sides["test"])


def test_wq_style_mimic_follows_reference_preference(shared_data, tmp_path):
    run_import("wq-style-mimic", tmp_path / "w.jsonl", data_root=shared_data)
    pairs = {p.id: p for p in read_pairs(tmp_path / "w.jsonl")}
    first = pairs["wq-style-mimic-h-94"]  # listed with reference_preference "2" first
    assert first.chosen.startswith("I breathed in the night air")
    assert first.rejected.startswith("The scent of blossoms colors the night")
    assert first.prompt == "Write a paragraph in the style of Ben Lerner."
    assert Counter(p.author for p in pairs.values())["Ben Lerner"] == 3


def test_lamp_p_labels_and_unique_paragraphs(shared_data, tmp_path):
    run_import("lamp-p", tmp_path / "l.jsonl", data_root=shared_data)
    pairs = read_pairs(tmp_path / "l.jsonl")
    assert pairs[0].chosen.startswith("My father's bond with Yezha, his aging German Shepherd, "
                                      "was something out of an Eastern European fairytale.")
    assert not pairs[0].chosen.endswith("Paragraph 2:")
    texts = [t for p in pairs for t in (p.chosen, p.rejected)]
    assert len(set(texts)) == len(texts)


def _lamp(user: str, answer: str) -> dict:
    return {"messages": [{"role": "system", "content": "sys"},
                         {"role": "user", "content": user},
                         {"role": "assistant", "content": answer}]}


@pytest.mark.parametrize("item, expected", [
    (_lamp("Paragraph 1:\nA a.\n\nParagraph 2:\nB b.\n\nYou must produce your answer ...",
           '{"preference": "1"}'), ("A a.", "B b.", "1")),
    (_lamp("paragraph 1: A\nparagraph 2: B", "preference: 2"), ("A", "B", "2")),
    (_lamp("Paragraph 1:\nA\nParagraph 2:\nB", '{"preference": 2}'), ("A", "B", "2")),
    (_lamp("Paragraph 1:\nA\nParagraph 2:\nB", '{"preference": "3"}'),
     "cannot read the preference label"),
    (_lamp("Only one paragraph here.", '{"preference": "1"}'), "cannot find both paragraphs"),
    (_lamp("Paragraph 1:\n\nParagraph 2:\nB", '{"preference": "1"}'),
     "cannot find both paragraphs"),
    ({"messages": [{"role": "user", "content": "Paragraph 1: A Paragraph 2: B"}]},
     "no user or assistant turn"),
    ({"text": "x"}, "no 'messages' list"),
])
def test_parse_lamp_p_is_robust(item, expected):
    assert parse_lamp_p(item) == expected


def test_lamp_p_bad_lines_are_counted(tmp_path):
    folder = tmp_path / "preferences" / "creativity_eval"
    folder.mkdir(parents=True)
    good = _lamp("Paragraph 1:\nA\n\nParagraph 2:\nB\n", '{"preference": "2"}')
    lines = [json.dumps(good), "{not json", json.dumps(_lamp("no paragraphs", "1")),
             json.dumps({"messages": "x"})]
    (folder / "lamp-P_test.jsonl").write_text("\n".join(lines) + "\n")
    summary = run_import("lamp-p", tmp_path / "out.jsonl", data_root=tmp_path)
    assert summary["read"] == 4 and summary["written"] == 1
    assert summary["skipped_by_reason"] == {"not valid JSON": 1, "cannot find both paragraphs": 1,
                                            "no 'messages' list": 1}
    (pair,) = read_pairs(tmp_path / "out.jsonl")
    assert (pair.chosen, pair.rejected) == ("B", "A")


def test_wqrm_constraints_and_reference(shared_data, tmp_path):
    summary = run_import("wqrm", tmp_path / "w.jsonl", data_root=shared_data)
    tasks = {t.id: t for t in read_tasks(tmp_path / "w.jsonl")}
    task = tasks["wqrm-creative_writing_triplet_22"]
    assert [(c.id, c.kwargs) for c in task.constraints] == [
        ("creative:point_of_view", {"person": "first"}),
        ("creative:word_range", {"min_words": 184, "max_words": 276})]  # 230 words ± 20%
    assert "about 230 words" in task.prompt and "in the first person" in task.prompt
    assert task.reference.startswith("I rang the doorbell")
    assert task.reference.endswith("herself a flickering light.")  # best_cot, ranked best 3 times
    people = Counter(c.kwargs["person"] for t in tasks.values() for c in t.constraints
                     if c.id == "creative:point_of_view")
    assert people == {"first": 45, "third": 19, "second": 4}
    assert summary["tasks_without_reference"] == sum(
        t.reference is None for t in tasks.values())


def test_writingbench_length_tasks(shared_data, tmp_path):
    run_import("writingbench-length", tmp_path / "w.jsonl", data_root=shared_data)
    tasks = {t.id: t for t in read_tasks(tmp_path / "w.jsonl")}
    assert tasks["writingbench-length-16"].constraints[0].kwargs == {"min_words": 2000,
                                                                     "max_words": 2500}
    assert tasks["writingbench-length-16"].length_statement == "2000-2500 words"
    assert tasks["writingbench-length-130"].constraints[0].kwargs == {"max_words": 1000}
    assert all(len(t.constraints) == 1 and t.constraints[0].id == "creative:word_range"
               for t in tasks.values())
    # the query's rubric rides along as criteria, rendered into the judge's principle
    first = tasks["writingbench-length-16"]
    assert [c.name for c in first.criteria][:2] == ["Introduction_Comprehensiveness", "Technical_Accuracy"]
    assert len(first.criteria) == 5 and "checklist" not in first.to_json_dict()
    assert first.judge_principle().startswith("Criteria:\n1. Introduction_Comprehensiveness: Evaluates how")


@pytest.mark.parametrize("subset", ["format", "style"])
def test_writingbench_rubric_tasks_carry_their_criteria(shared_data, tmp_path, subset):
    run_import(f"writingbench-{subset}", tmp_path / "w.jsonl", data_root=shared_data)
    tasks = read_tasks(tmp_path / "w.jsonl")
    source = [json.loads(line) for line in
              (shared_data / f"prompts/writingbench/{subset}/{subset}_subset.jsonl").open()]
    assert [t.id for t in tasks] == [f"writingbench-{subset}-{item['index']}" for item in source]
    for task, item in zip(tasks, source):
        assert task.prompt == item["query"] and not task.constraints
        assert [(c.name, c.description) for c in task.criteria] == [
            (c["name"].strip(), c["criteria_description"].strip()) for c in item["criteria"]]
    assert {t.language for t in tasks} == {"en", "zh"}


def test_eqbench_fills_every_seed_with_stable_ids(shared_data, tmp_path):
    run_import("eqbench", tmp_path / "e.jsonl", data_root=shared_data)
    tasks = read_tasks(tmp_path / "e.jsonl")
    assert tasks[0].id == "eqbench-1-01"
    assert ("Include references to the gladiator's favorite Roman deity or mythological figure. "
            "First person, past tense, 1000 words.") in tasks[0].prompt
    assert not any("<SEED>" in t.prompt or t.constraints for t in tasks)
    assert len({t.prompt_key for t in tasks}) == 32 and len({t.prompt for t in tasks}) == 320


def test_data_root_resolution(tmp_path, monkeypatch, shared_data):
    monkeypatch.setenv("QUILLRL_DATA", str(shared_data))
    assert resolve_data_root() == shared_data
    assert resolve_data_root(tmp_path) == tmp_path  # the argument wins over the variable
    monkeypatch.setenv("QUILLRL_DATA", str(tmp_path / "missing"))
    with pytest.raises(DataError, match=r"missing \(from \$QUILLRL_DATA\) is not a directory"):
        resolve_data_root()
    monkeypatch.delenv("QUILLRL_DATA")
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # the repo root: ../shared/data from it
    assert resolve_data_root().resolve() == shared_data.resolve()


def test_import_errors(tmp_path, shared_data):
    with pytest.raises(DataError, match="unknown data set 'nope'; choose one of: eqbench"):
        run_import("nope", tmp_path / "o.jsonl", data_root=shared_data)
    with pytest.raises(DataError, match="--split must be one of train, test, all"):
        run_import("storyer", tmp_path / "o.jsonl", split="dev", data_root=shared_data)
    with pytest.raises(DataError, match="storyer/rank_pairs.jsonl not found under the data root"):
        run_import("storyer", tmp_path / "o.jsonl", data_root=tmp_path)
    assert not (tmp_path / "o.jsonl").exists()


def test_an_unknown_constraint_id_is_counted_and_skipped_by_data_import(tmp_path):
    """data reads only a constraint's shape; ``data import`` passes the registry's check
    (``constraints.check_imported``), so a raw IFEval line naming no check is skipped, counted
    and shown, never written for a later reader to stumble on."""
    import json as _json

    from typer.testing import CliRunner

    from quillrl.cli import app

    (tmp_path / "ifeval").mkdir()
    good = {"key": 1, "prompt": "Write a poem.", "instruction_id_list": ["punctuation:no_comma"],
            "kwargs": [{}]}
    bad = {"key": 2, "prompt": "Write a song.", "instruction_id_list": ["punctuation:no_colon"],
           "kwargs": [{}]}
    (tmp_path / "ifeval" / "input_data.jsonl").write_text(
        "".join(_json.dumps(r) + "\n" for r in (good, bad)))
    out = tmp_path / "tasks.jsonl"
    result = CliRunner().invoke(app, ["data", "import", "ifeval", "--out", str(out),
                                      "--data-root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = _json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["skipped_by_reason"] == {"invalid constraint": 1}
    assert "punctuation:no_colon" in summary["skip_examples"]["invalid constraint"]
    assert [t.id for t in read_tasks(out)] == ["1"]
