"""`quillrl data import` and `quillrl data check` end to end through the CLI."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from quillrl.cli import app
from quillrl.data import read_pairs
from quillrl.data.importers import importer_names

runner = CliRunner()


def _summary(result) -> dict:
    """The verb's JSON summary, less ``cpu_threads`` (the machine's, tested in test_cpu_threads)."""
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert "threads" in summary.pop("cpu_threads")
    return summary


def test_import_storyer_test_split(shared_data, tmp_path):
    out = tmp_path / "storyer-test.jsonl"
    result = runner.invoke(app, ["data", "import", "storyer", "--out", str(out), "--split", "test",
                                 "--seed", "0", "--data-root", str(shared_data)])
    assert result.exit_code == 0, result.output
    summary = _summary(result)
    assert summary["dataset"] == "storyer" and summary["split"] == "test"
    assert summary["read"] == 1000 and summary["records"] == 1000 and summary["skipped"] == 0
    assert summary["written"] == len(read_pairs(out)) == 207
    assert summary["out"] == str(out)


def test_import_reports_skips_on_stderr_and_in_the_summary(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("QUILLRL_DATA", str(shared_data))
    result = runner.invoke(app, ["data", "import", "wqrm", "--out", str(tmp_path / "w.jsonl")])
    assert result.exit_code == 0, result.output
    summary = _summary(result)
    assert summary["skipped_by_reason"] == {"plot is only a label, no instruction": 33}
    assert summary["written"] == 68
    assert "skipped 33 of 101 items" in result.stderr


def test_import_help_names_every_data_set():
    result = runner.invoke(app, ["data", "import", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert all(name in result.stdout for name in importer_names())
    assert "$QUILLRL_DATA" in result.stdout


def test_import_errors_exit_2_with_a_message(tmp_path):
    result = runner.invoke(app, ["data", "import", "nope", "--out", str(tmp_path / "o.jsonl"),
                                 "--data-root", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown data set 'nope'" in result.stderr
    missing = tmp_path / "missing"
    result = runner.invoke(app, ["data", "import", "storyer", "--out", str(tmp_path / "o.jsonl"),
                                 "--data-root", str(missing)])
    assert result.exit_code == 2
    assert f"data root {missing} (from --data-root) is not a directory" in result.stderr


def test_check_counts_skipped_lines(tmp_path):
    path = tmp_path / "pairs.jsonl"
    good = {"id": "a", "prompt": "p", "chosen": "c", "rejected": "r"}
    path.write_text("\n".join([json.dumps(good), "nope", json.dumps({"id": "b"})]) + "\n")
    result = runner.invoke(app, ["data", "check", str(path), "--kind", "pairs", "--skip-invalid"])
    assert result.exit_code == 0, result.output
    assert _summary(result) == {"path": str(path), "kind": "pairs", "records": 1, "skipped": 2, "ok": True,
                                "skipped_by_reason": {"not valid JSON": 1,
                                                      "missing field 'prompt'": 1}}
    assert f"{path}:2: skipped: not valid JSON" in result.stderr
    assert f"{path}:3: skipped: missing required field" in result.stderr

    result = runner.invoke(app, ["data", "check", str(path), "--kind", "pairs"])
    assert result.exit_code == 2
    assert f"{path}:2: not valid JSON" in result.stderr

    result = runner.invoke(app, ["data", "check", str(path), "--kind", "poems"])
    assert result.exit_code == 2
    assert "--kind must be one of tasks, pairs, responses" in result.stderr
