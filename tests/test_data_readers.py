"""IFEval's and IFBench's raw task formats, and the readers on the real shared files."""

from __future__ import annotations

import json

import pytest

from quillrl.constraints import read_tasks
from quillrl.data import read_responses
from quillrl.data.readers import raw_ifeval_to_task
from quillrl.errors import DataError

IFEVAL_LINE = {"key": 1000, "prompt": "Write without commas, 300+ words.",
               "instruction_id_list": ["punctuation:no_comma", "length_constraints:number_words"],
               "kwargs": [{}, {"relation": "at least", "num_words": 300}]}


def _one(tmp_path, value) -> str:
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(value) + "\n", encoding="utf-8")
    return path


def test_ifeval_raw_line_becomes_a_task(tmp_path):
    (task,) = read_tasks(_one(tmp_path, IFEVAL_LINE))
    assert task.id == "1000"
    assert task.prompt == IFEVAL_LINE["prompt"]
    assert [(c.id, c.kwargs) for c in task.constraints] == [
        ("punctuation:no_comma", {}),
        ("length_constraints:number_words", {"relation": "at least", "num_words": 300})]
    assert "key" not in task.to_json_dict() and "instruction_id_list" not in task.to_json_dict()


def test_ifbench_literal_strings_are_parsed_and_none_kwargs_kept():
    raw = {"key": "7", "prompt": "p", "instruction_id_list": "['punctuation:no_comma']",
           "kwargs": "[{'relation': None, 'num_words': None}]", "note": "kept"}
    task = raw_ifeval_to_task(raw)
    assert task == {"prompt": "p", "note": "kept", "id": "7", "constraints": [
        {"id": "punctuation:no_comma", "kwargs": {"relation": None, "num_words": None}}]}


def test_literal_eval_never_runs_code(tmp_path):
    raw = {**IFEVAL_LINE, "instruction_id_list": "__import__('os').system('echo pwned')"}
    with pytest.raises(DataError) as err:
        read_tasks(_one(tmp_path, raw))
    assert err.value.field == "instruction_id_list"
    assert "not a Python literal list" in str(err.value)


@pytest.mark.parametrize("change, field, words", [
    ({"kwargs": [{}]}, "kwargs", "2 instruction ids but 1 kwargs dicts"),
    ({"kwargs": [{}, None]}, "kwargs[1]", "expected a dict, got NoneType"),
    ({"instruction_id_list": ["punctuation:no_comma", 5]}, "instruction_id_list[1]",
     "expected a string"),
    ({"instruction_id_list": "{'a': 1}"}, "instruction_id_list", "expected a list, got dict"),
    ({"kwargs": "[{'a': }]"}, "kwargs", "not a Python literal list"),
    ({"key": None}, "key", "missing"),
])
def test_raw_format_errors_name_the_raw_field(tmp_path, change, field, words):
    with pytest.raises(DataError) as err:
        read_tasks(_one(tmp_path, {**IFEVAL_LINE, **change}))
    assert (err.value.line, err.value.field) == (1, field)
    assert words in str(err.value)


def test_raw_line_without_kwargs_is_an_error(tmp_path):
    raw = {k: v for k, v in IFEVAL_LINE.items() if k != "kwargs"}
    with pytest.raises(DataError, match="missing required field") as err:
        read_tasks(_one(tmp_path, raw))
    assert err.value.field == "kwargs"


def test_read_tasks_on_the_real_ifeval_file(shared_data):
    tasks = read_tasks(shared_data / "ifeval" / "input_data.jsonl")
    assert len(tasks) == 541 and not tasks.skipped
    assert tasks[0].id == "1000"
    assert sum(len(t.constraints) for t in tasks) == 834  # IFEval's 834 instructions
    assert len({t.id for t in tasks}) == 541


def test_ifbench_raw_lines_convert(shared_data):
    # The format conversion alone, independent of which constraint ids the registry knows.
    lines = (shared_data / "ifbench" / "IFBench_test.jsonl").read_text().splitlines()
    tasks = [raw_ifeval_to_task(json.loads(line), line=n) for n, line in enumerate(lines, 1)]
    assert len(tasks) == 300 and len({t["id"] for t in tasks}) == 300
    assert sum(len(t["constraints"]) for t in tasks) == 344
    first = tasks[0]["constraints"][0]
    assert first["id"] == "count:keywords_multiple"
    assert first["kwargs"]["keyword1"] == "kaleidoscope" and first["kwargs"]["N"] is None


def test_read_tasks_on_the_real_ifbench_file(shared_data):
    tasks = read_tasks(shared_data / "ifbench" / "IFBench_test.jsonl")
    assert len(tasks) == 300 and not tasks.skipped
    assert sum(len(t.constraints) for t in tasks) == 344  # IFBench's 344 instructions
    assert tasks[0].constraints[0].kwargs["N"] is None  # kept as given; the check drops it


@pytest.mark.parametrize("path, n, with_prompt", [
    ("ifeval/input_response_data_gpt4_20231107_145030.jsonl", 541, 541),
    ("ifbench/sample_output.jsonl", 294, 294),
])
def test_read_responses_on_the_real_files(shared_data, path, n, with_prompt):
    responses = read_responses(shared_data / path)
    assert len(responses) == n and not responses.skipped
    assert sum(r.prompt is not None for r in responses) == with_prompt
    assert all(r.response for r in responses[:10])
