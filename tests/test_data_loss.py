"""No lost data (issue 23 §4, §6): a refused output is left as it was; a raw source file is
never overwritten; a full disk leaves every output valid up to its last whole line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from quillrl.cli import app

runner = CliRunner()

# Last lines without a newline: what a resume would cut as "torn" before it refused the file.
NOT_OURS = {
    "notes.txt": "my notes\nline two has no newline",
    "foreign.jsonl": '{"a": 1}\n{"b": 2',
    "tasks.jsonl": '{"id": "t1", "prompt": "Write."}\n{"id": "t2", "prompt": "Write again."}',
}

TASKS = [{"id": "t1", "prompt": "Write about the sea.", "constraints": []},
         {"id": "t2", "prompt": "Write about a cat.", "constraints": []}]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("name", sorted(NOT_OURS))
def test_generate_refuses_a_file_that_is_not_ours_untouched(name, tmp_path, tiny_model_dir):
    out = tmp_path / name
    out.write_text(NOT_OURS[name])
    tasks = _write(tmp_path / "in.jsonl", TASKS)
    result = runner.invoke(app, ["generate", "--model", str(tiny_model_dir), "--tasks", str(tasks),
                                 "--out", str(out), "--max-new-tokens", "2"])
    assert result.exit_code == 2, result.output
    assert out.read_text() == NOT_OURS[name]


@pytest.mark.parametrize("name", sorted(NOT_OURS))
def test_winrate_judgments_refuses_a_file_that_is_not_ours_untouched(name, tmp_path):
    out = tmp_path / name
    out.write_text(NOT_OURS[name])
    tasks = _write(tmp_path / "in.jsonl", TASKS)
    resp = [{"id": t["id"], "sample": 0, "prompt": t["prompt"], "response": "words " * (i + 1),
             "model": "m", "finish_reason": "stop", "tokens": i + 1} for i, t in enumerate(TASKS)]
    a, b = _write(tmp_path / "a.jsonl", resp), _write(tmp_path / "b.jsonl", resp[::-1])
    result = runner.invoke(app, ["eval", "winrate", "--tasks", str(tasks), "--a", str(a),
                                 "--b", str(b), "--judge", "baseline:length",
                                 "--judgments", str(out)])
    assert result.exit_code == 2, result.output
    assert out.read_text() == NOT_OURS[name]


def test_our_own_torn_last_line_is_still_repaired(tmp_path):
    from quillrl.data import JsonlWriter

    path = tmp_path / "out.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b", "x"')
    with JsonlWriter(path, resume=True) as w:
        assert w.done_ids == {"a"} and w.truncated_lines == 1
    assert path.read_text() == '{"id": "a"}\n'


def test_data_import_never_overwrites_a_raw_source_file(tmp_path):
    root = tmp_path / "data"
    (root / "ifeval").mkdir(parents=True)
    source = _write(root / "ifeval" / "input_data.jsonl", [
        {"key": 1, "prompt": "Write without commas.", "instruction_id_list": ["punctuation:no_comma"],
         "kwargs": [{}]}])
    other = root / "ifeval" / "responses.jsonl"
    other.write_text('{"prompt": "p", "response": "r"}\n')
    for out in (source, other):
        saved = out.read_bytes()
        result = runner.invoke(app, ["data", "import", "ifeval", "--data-root", str(root),
                                     "--out", str(out)])
        assert result.exit_code == 2 and "data root" in result.stderr, result.output
        assert out.read_bytes() == saved
    fresh = root / "imported.jsonl"  # a new file inside the root is fine
    ok = runner.invoke(app, ["data", "import", "ifeval", "--data-root", str(root), "--out", str(fresh)])
    assert ok.exit_code == 0, ok.output
    assert json.loads(fresh.read_text().splitlines()[0])["prompt"] == "Write without commas."
