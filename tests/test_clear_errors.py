"""Raw tracebacks that became one-line errors, exit 2, naming the file or option (issue 23 §6)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from quillrl.cli import app

runner = CliRunner()


def _tasks(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps({"id": "t1", "prompt": "Write.", "constraints": []}) + "\n")
    return path


def _generate(tmp_path, model, *extra):
    return runner.invoke(app, ["generate", "--model", str(model), "--tasks", str(_tasks(tmp_path)),
                               "--out", str(tmp_path / "out.jsonl"), "--max-new-tokens", "2", *extra])


def _one_line_error(result, *words):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.mark.parametrize("config", ["", "{not json", "[1, 2]", '{"peft_type": "LORA"}'])
def test_an_adapter_with_a_bad_config_names_the_file(tmp_path, tiny_model_dir, config):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(config)
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    _one_line_error(_generate(tmp_path, adapter), "adapter_config.json")


def test_an_adapter_without_weights_is_refused_without_a_hub_lookup(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps(
        {"base_model_name_or_path": str(tiny_model_dir), "peft_type": "LORA"}))
    _one_line_error(_generate(tmp_path, adapter), "has no weights", "never looks them up on a hub")


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_temperature_that_is_not_a_finite_number(tmp_path, tiny_model_dir, value):
    _one_line_error(_generate(tmp_path, tiny_model_dir, "--temperature", value), "--temperature",
                    "finite")


def test_an_output_under_proc(tmp_path, tiny_model_dir):
    result = runner.invoke(app, ["generate", "--model", str(tiny_model_dir), "--tasks",
                                 str(_tasks(tmp_path)), "--out", "/proc/quillrl-out.jsonl"])
    _one_line_error(result, "/proc/quillrl-out.jsonl")


def test_report_on_huge_metric_values(tmp_path):
    rows = [{"step": 1, "loss": 1e308, "reward": 1.0}, {"step": 2, "loss": -1e308, "reward": 1e300},
            {"step": 3, "loss": 10 ** 400, "reward": 2.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = (tmp_path / "report.md").read_text()
    assert "| loss | 1e+308 | inf | -1e+308 | inf |" in report
    assert "left out: values too large to plot" in report
