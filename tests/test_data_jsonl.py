"""JSONL round trips, errors that name file/line/field, skip_invalid accounting, the writers."""

from __future__ import annotations

import json

import pytest

from quillrl.constraints import read_tasks
from quillrl.data import (JsonlWriter, PreferencePair, Response, WritingTask, read_pairs,
                          read_responses, write_jsonl)
from quillrl.data.resumable import ResumableJsonl
from quillrl.errors import DataError

PAIR = {"id": "p1", "prompt": "Write.", "chosen": "Good.", "rejected": "Bad."}
TASK = {"id": "t1", "prompt": "Write a poem.",
        "constraints": [{"id": "creative:word_range", "kwargs": {"max_words": 50}}]}


def _write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_pairs_round_trip_keeps_extra_fields_and_omits_unset_optionals(tmp_path):
    pairs = [
        PreferencePair(**PAIR),
        PreferencePair(id="p2", prompt="P", chosen="Ünïcode\nline two", rejected="r",
                       rationale="because", source="unit", meta={"tags": ["a", 1], "n": None}),
    ]
    path = tmp_path / "pairs.jsonl"
    assert write_jsonl(path, pairs) == 2
    raw = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert raw[0] == PAIR  # no rationale/source: null written for a file that never had them
    assert raw[1]["meta"] == {"tags": ["a", 1], "n": None}  # extras keep their None values
    back = read_pairs(path)
    assert [p.to_json_dict() for p in back] == [p.to_json_dict() for p in pairs]
    assert back[1].meta == {"tags": ["a", 1], "n": None}


def test_tasks_round_trip_with_reference_and_extras(tmp_path):
    task = WritingTask(**TASK, reference="A reference.", origin={"set": "x"})
    path = write_jsonl(tmp_path / "t.jsonl", [task]) and tmp_path / "t.jsonl"
    (back,) = read_tasks(path)
    assert back.to_json_dict() == task.to_json_dict()
    assert back.constraints[0].id == "creative:word_range"
    assert back.constraints[0].kwargs == {"max_words": 50}


def test_task_constraints_default_to_empty_and_are_written(tmp_path):
    path = _write_lines(tmp_path / "t.jsonl", [json.dumps({"id": "t", "prompt": "p"})])
    (task,) = read_tasks(path)
    assert task.constraints == []
    assert task.to_json_dict() == {"id": "t", "prompt": "p", "constraints": []}


def test_blank_lines_are_not_records_and_line_numbers_count_them(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(PAIR) + "\n\n   \n" + json.dumps({**PAIR, "id": "p2"}) + "\n"
                    + "{broken\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_pairs(path)
    assert err.value.line == 5


@pytest.mark.parametrize("line, field, words", [
    ("not json at all", None, "not valid JSON"),
    ('["a", "list"]', None, "not a JSON object"),
    (json.dumps({k: v for k, v in PAIR.items() if k != "rejected"}), "rejected", "missing"),
    (json.dumps({**PAIR, "chosen": 3}), "chosen", "got int"),
    (json.dumps({**PAIR, "id": ""}), "id", "at least 1 character"),
    (json.dumps({**PAIR, "source": ["x"]}), "source", "got list"),
])
def test_pair_errors_name_file_line_and_field(tmp_path, line, field, words):
    path = _write_lines(tmp_path / "bad.jsonl", [json.dumps(PAIR), line])
    with pytest.raises(DataError) as err:
        read_pairs(path)
    exc = err.value
    assert (exc.path, exc.line, exc.field) == (str(path), 2, field)
    assert str(exc).startswith(f"{path}:2: ")
    assert words in str(exc)
    if field:
        assert f"(field '{field}')" in str(exc)


@pytest.mark.parametrize("task, field, words", [
    ({"id": "t", "prompt": 1}, "prompt", "got int"),
    ({"id": "t", "prompt": "p", "constraints": {"id": "x"}}, "constraints", "got dict"),
    ({"id": "t", "prompt": "p", "constraints": [{"kwargs": {}}]}, "constraints.0", "id"),
    ({"id": "t", "prompt": "p", "constraints": [{"id": "creative:no_such_check"}]},
     "constraints.0", "unknown constraint id"),
    ({"id": "t", "prompt": "p", "reference": 5}, "reference", "got int"),
])
def test_task_errors_name_the_nested_field(tmp_path, task, field, words):
    path = _write_lines(tmp_path / "bad.jsonl", [json.dumps(task)])
    with pytest.raises(DataError) as err:
        read_tasks(path)
    assert (err.value.line, err.value.field) == (1, field)
    assert words in str(err.value)


def test_bad_bytes_and_byte_order_mark(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(PAIR).encode() + b"\r\n"
                     + b'{"id": "\xff"}\n')
    result = read_pairs(path, skip_invalid=True)
    assert [p.id for p in result] == ["p1"]
    assert (result.skipped[0].line, result.skipped[0].reason) == (2, "not valid UTF-8 at byte 9")


def test_duplicate_ids_are_bad_lines_naming_the_first(tmp_path):
    path = _write_lines(tmp_path / "p.jsonl", [json.dumps(PAIR), json.dumps(PAIR)])
    with pytest.raises(DataError, match=r"p.jsonl:2: duplicate id 'p1' \(first on line 1\)"):
        read_pairs(path)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_pairs(tmp_path / "nope.jsonl")


def test_skip_invalid_reports_every_skipped_line_with_reason(tmp_path):
    lines = [json.dumps(PAIR), "oops", json.dumps({"id": "x"}), json.dumps(PAIR),
             json.dumps({**PAIR, "id": "p2", "chosen": None}), json.dumps({**PAIR, "id": "p3"})]
    result = read_pairs(_write_lines(tmp_path / "p.jsonl", lines), skip_invalid=True)
    assert [p.id for p in result] == ["p1", "p3"]
    assert len(result) == 2 and result[1].id == "p3"
    assert [(s.line, s.field) for s in result.skipped] == [
        (2, None), (3, "prompt"), (4, "id"), (5, "chosen")]
    assert result.skipped[0].reason.startswith("not valid JSON")
    assert "duplicate id" in result.skipped[2].reason
    assert result.skipped_by_reason() == {
        "not valid JSON": 1, "missing field 'prompt'": 1, "duplicate id": 1,
        "invalid field 'chosen'": 1}


def test_responses_accept_key_id_or_prompt_and_need_one(tmp_path):
    lines = [json.dumps({"key": 1001, "response": "a"}), json.dumps({"id": "x", "response": "b"}),
             json.dumps({"prompt": "P", "response": "c", "model": "m"}),
             json.dumps({"id": "x", "response": "again"}),  # several samples per task are fine
             json.dumps({"response": "orphan"}), json.dumps({"id": "y"})]
    result = read_responses(_write_lines(tmp_path / "r.jsonl", lines), skip_invalid=True)
    assert [(r.id, r.prompt, r.response) for r in result] == [
        ("1001", None, "a"), ("x", None, "b"), (None, "P", "c"), ("x", None, "again")]
    assert result[2].to_json_dict() == {"prompt": "P", "response": "c", "model": "m"}
    assert [(s.line, s.field) for s in result.skipped] == [(5, "id"), (6, "response")]
    with pytest.raises(DataError, match=r"r.jsonl:5: .*'id' \(or 'key'\) or 'prompt'"):
        read_responses(tmp_path / "r.jsonl")


def test_response_model_needs_id_or_prompt():
    with pytest.raises(ValueError, match="needs 'id'"):
        Response(response="x")


def test_jsonl_writer_flushes_each_line_and_a_resumable_output_continues_it(tmp_path):
    path = tmp_path / "out" / "gen.jsonl"
    writer = JsonlWriter(path)
    writer.write(PreferencePair(**PAIR))
    # Flushed at once: another reader sees a complete line before the writer is closed.
    assert read_pairs(path)[0].id == "p1"
    writer.write({"id": "p2", "prompt": "p", "chosen": "c", "rejected": "r"})
    writer.close()
    with ResumableJsonl(path, settings={}) as again:
        assert set(again.records) == {"p1", "p2"}
        again.write({"id": "p3", "prompt": "p", "chosen": "c", "rejected": "r"})
    assert [p.id for p in read_pairs(path)] == ["p1", "p2", "p3"]
    with JsonlWriter(path):  # a JsonlWriter always starts the file over
        pass
    assert path.read_text() == ""


def test_resume_drops_a_line_cut_mid_write(tmp_path):
    path = tmp_path / "gen.jsonl"
    path.write_text(json.dumps(PAIR) + "\n" + '{"id": "p2", "prompt": "half', encoding="utf-8")
    with ResumableJsonl(path, settings={}) as out:
        assert out.truncated_lines == 1 and set(out.records) == {"p1"}
        out.write({**PAIR, "id": "p2"})
    assert [p.id for p in read_pairs(path)] == ["p1", "p2"]


def test_resume_keeps_a_complete_last_line_without_newline(tmp_path):
    path = tmp_path / "gen.jsonl"
    path.write_text(json.dumps(PAIR), encoding="utf-8")
    with ResumableJsonl(path, settings={}) as out:
        assert out.truncated_lines == 0 and set(out.records) == {"p1"}
        out.write({**PAIR, "id": "p2"})
    assert [p.id for p in read_pairs(path)] == ["p1", "p2"]


def test_resume_refuses_a_damaged_middle_line_untouched(tmp_path):
    path = tmp_path / "gen.jsonl"
    text = json.dumps(PAIR) + "\nnot json\n" + json.dumps(PAIR) + "\n"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        ResumableJsonl(path, settings={})
    assert err.value.line == 2 and path.read_text() == text


def test_write_jsonl_replaces_whole_file_and_leaves_no_temp_on_error(tmp_path):
    path = tmp_path / "p.jsonl"
    write_jsonl(path, [PAIR, {**PAIR, "id": "p2"}])

    def records():
        yield {**PAIR, "id": "new"}
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_jsonl(path, records())
    assert [p.id for p in read_pairs(path)] == ["p1", "p2"]  # the old file is intact
    assert sorted(f.name for f in tmp_path.iterdir()) == ["p.jsonl"]
    with pytest.raises(TypeError, match="pydantic model or a dict"):
        write_jsonl(path, ["a string"])


def test_data_reads_a_tasks_shape_and_constraints_checks_its_ids(tmp_path):
    """data (below constraints) reads constraint records for their shape; the registry's check
    is constraints.read_tasks', with the same file, line and field (docs/design.md, "Layout")."""
    import subprocess
    import sys

    from quillrl.constraints import Constraint
    from quillrl.data import read_task_records

    unknown = {"id": "u", "prompt": "p", "constraints": [{"id": "creative:nope"}]}
    path = _write_lines(tmp_path / "t.jsonl", [json.dumps(TASK), json.dumps(unknown)])
    assert read_task_records(path)[1].constraints[0].id == "creative:nope"
    with pytest.raises(DataError) as err:
        read_tasks(path)
    assert (err.value.path, err.value.line, err.value.field) == (str(path), 2, "constraints.0")
    assert "unknown constraint id 'creative:nope'" in str(err.value)
    result = read_tasks(path, skip_invalid=True)
    assert [t.id for t in result] == ["t1"]
    assert result.skipped_by_reason() == {"unknown constraint id": 1}
    assert isinstance(result[0].constraints[0], Constraint)  # built once, at read time
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys; from quillrl.data import read_task_records; "
         f"read_task_records({str(path)!r}); print(sorted(m for m in sys.modules "
         "if m.startswith('quillrl.constraints')))"], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
