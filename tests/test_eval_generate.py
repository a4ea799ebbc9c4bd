"""``quillrl generate``: one line per (task, sample), resumable, refusing foreign files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quillrl.data import WritingTask, read_responses
from quillrl.errors import ConfigError
from quillrl.eval.generate import generate_responses

TASKS = [WritingTask(id=f"t{i}", prompt=p) for i, p in enumerate(
    ["Write a haiku about rain.", "A story about a lighthouse keeper, please.", "Hi",
     "Describe the smell of bread in one line.", "Name a colour."])]


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_one_line_per_task_and_sample_with_its_settings(tiny_model_dir, tmp_path):
    out = tmp_path / "r.jsonl"
    summary = generate_responses(str(tiny_model_dir), TASKS, out, n=2, temperature=0.8,
                                 top_p=0.9, max_new_tokens=6, seed=3, batch_size=3,
                                 progress=False)
    assert summary["n_tasks"] == 5 and summary["n_responses"] == 10 == summary["generated"]
    assert summary["tokens"] == sum(r["tokens"] for r in lines(out)) > 0
    assert summary["out"] == str(out) and summary["tokens_per_s"] > 0
    rows = lines(out)
    # finished: rewritten in task order, samples in order
    assert [(r["id"], r["sample"]) for r in rows] == [(t.id, k) for t in TASKS for k in (0, 1)]
    first = rows[0]
    assert first["prompt"] == TASKS[0].prompt and first["model"] == str(tiny_model_dir)
    assert first["finish_reason"] in ("stop", "length")
    assert (first["temperature"], first["top_p"], first["max_new_tokens"], first["seed"]) == \
        (0.8, 0.9, 6, 3)
    assert summary["clipped"] == sum(r["finish_reason"] == "length" for r in rows)
    # the typed reader reads it back (sample, tokens, settings are declared fields)
    records = list(read_responses(out).records)
    assert records[1].sample == 1 and records[1].tokens == rows[1]["tokens"]
    # the same seed draws the same samples
    again = tmp_path / "again.jsonl"
    generate_responses(str(tiny_model_dir), TASKS, again, n=2, temperature=0.8, top_p=0.9,
                       max_new_tokens=6, seed=3, batch_size=3, progress=False)
    assert [r["response"] for r in lines(again)] == [r["response"] for r in rows]


def test_resume_after_an_interrupt_gives_the_uninterrupted_file(tiny_model_dir, tmp_path):
    fresh, resumed = tmp_path / "fresh.jsonl", tmp_path / "resumed.jsonl"
    settings = dict(max_new_tokens=5, batch_size=2, progress=False)
    generate_responses(str(tiny_model_dir), TASKS, fresh, **settings)

    def stop_after_first_batch(records):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_responses(str(tiny_model_dir), TASKS, resumed, on_batch=stop_after_first_batch,
                           **settings)
    assert len(lines(resumed)) == 2  # the first batch, complete lines only
    # a kill mid-write leaves half a line: dropped on resume, that response made again
    with resumed.open("a") as fh:
        fh.write('{"id": "t9", "sam')
    summary = generate_responses(str(tiny_model_dir), TASKS, resumed, **settings)
    assert summary["resumed"] == 2 and summary["generated"] == 3
    assert lines(resumed) == lines(fresh)


@pytest.mark.parametrize("change, named", [
    ({"max_new_tokens": 6}, "max_new_tokens=5"),
    ({"temperature": 0.7}, "temperature=0.0"),
    ({"seed": 1}, "seed=0"),
])
def test_a_file_made_otherwise_is_refused_naming_the_difference(tiny_model_dir, tmp_path,
                                                                change, named):
    out = tmp_path / "r.jsonl"
    settings = dict(max_new_tokens=5, progress=False, limit=2)
    generate_responses(str(tiny_model_dir), TASKS, out, **settings)
    with pytest.raises(ConfigError, match=named):
        generate_responses(str(tiny_model_dir), TASKS, out, **{**settings, **change})


def test_another_model_is_refused(tiny_model_dir, tiny_qwen_dir, tmp_path):
    out = tmp_path / "r.jsonl"
    generate_responses(str(tiny_model_dir), TASKS, out, max_new_tokens=3, limit=1, progress=False)
    with pytest.raises(ConfigError, match="model="):
        generate_responses(str(tiny_qwen_dir), TASKS, out, max_new_tokens=3, limit=1,
                           progress=False)


def test_limit_takes_the_first_tasks_and_n_adds_samples(tiny_model_dir, tmp_path):
    out = tmp_path / "r.jsonl"
    generate_responses(str(tiny_model_dir), TASKS, out, max_new_tokens=3, limit=2, progress=False)
    assert [r["id"] for r in lines(out)] == ["t0", "t1"]
    summary = generate_responses(str(tiny_model_dir), TASKS, out, n=2, max_new_tokens=3, limit=2,
                                 temperature=0.0, progress=False)
    assert summary["resumed"] == 2 and summary["generated"] == 2


def test_training_and_generation_share_the_prompt(tmp_path):
    """train policy's dataset prompt is WritingTask.messages(), the one generate renders."""
    from quillrl.data import write_jsonl
    from quillrl.train.policy_run import PolicyConfig, tasks_dataset

    path = tmp_path / "tasks.jsonl"
    write_jsonl(path, TASKS)
    rows = tasks_dataset(PolicyConfig(tasks=str(path)))
    by_id = {t.id: t for t in TASKS}
    for row in rows:
        assert row["prompt"] == by_id[row["task_id"]].messages()


@pytest.mark.parametrize("spec, backend, message", [
    ("no-such-model", "local", "Accepted forms"),
    ("smollm2-135m-instruct", "openai", "openai: model spec"),
    ("smollm2-135m-instruct", "tgi", "unknown backend"),
])
def test_bad_specs_say_what_is_accepted(spec, backend, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        generate_responses(spec, TASKS, tmp_path / "r.jsonl", backend=backend, progress=False)


def test_generate_cli(tiny_model_dir, tmp_path):
    from typer.testing import CliRunner

    from quillrl.cli import app
    from quillrl.data import write_jsonl

    tasks = tmp_path / "tasks.jsonl"
    write_jsonl(tasks, TASKS)
    out = tmp_path / "r.jsonl"
    result = CliRunner().invoke(app, ["generate", "--model", str(tiny_model_dir), "--tasks",
                                      str(tasks), "--out", str(out), "--max-new-tokens", "4",
                                      "--limit", "3", "--n", "2", "--temperature", "1.0"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"n_tasks", "n_responses", "tokens", "tokens_per_s", "out"} <= set(summary)
    assert summary["n_tasks"] == 3 and summary["n_responses"] == 6
    bad = CliRunner().invoke(app, ["generate", "--model", "nope", "--tasks", str(tasks),
                                   "--out", str(out)])
    assert bad.exit_code == 2 and "Accepted forms" in bad.output


def test_an_openai_server_spec_generates_what_the_local_model_does(tiny_model_dir, tmp_path):
    """Through `quillrl serve` on loopback, the same chat prompt gives the same greedy text."""
    from quillrl.backends import LocalBackend, OpenAIServer

    local_out, served_out = tmp_path / "local.jsonl", tmp_path / "served.jsonl"
    settings = dict(max_new_tokens=5, batch_size=1, progress=False, limit=3)
    generate_responses(str(tiny_model_dir), TASKS, local_out, **settings)
    with OpenAIServer(LocalBackend(str(tiny_model_dir), batch_size=1), "127.0.0.1", 0,
                      model_name="tiny").start() as server:
        spec = f"openai:{server.url}#tiny"  # the bound port: a closed server's url no longer has it
        summary = generate_responses(spec, TASKS, served_out, **settings)
    assert summary["generated"] == 3
    served = lines(served_out)
    assert [r["response"] for r in served] == [r["response"] for r in lines(local_out)]
    assert served[0]["model"] == spec


# --backend auto: vLLM in float32 where it is installed, else local (docs/design.md, "Generation
# and IFEval"). Whether vLLM is installed is faked both ways; nothing is loaded.
def test_auto_is_local_without_vllm(monkeypatch):
    from quillrl.eval import generate as gen

    monkeypatch.setattr(gen, "vllm_installed", lambda: False)
    assert gen.resolve_backend("auto", "smollm2-135m-instruct") == ("local", {})


def test_auto_is_float32_vllm_where_installed(monkeypatch):
    from quillrl.eval import generate as gen

    monkeypatch.setattr(gen, "vllm_installed", lambda: True)
    backend, options = gen.resolve_backend("auto", "smollm2-135m-instruct")
    assert backend == "vllm" and options["dtype"] == "float32"
    # the spec's own options win over auto's
    assert "dtype" not in gen.resolve_backend("auto", "smollm2-135m-instruct?dtype=bfloat16")[1]
    assert gen.resolve_backend("vllm") == ("vllm", {})  # an explicit choice adds nothing


def test_auto_vllm_option_without_vllm_says_why(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from quillrl.cli import app
    from quillrl.eval import generate as gen

    monkeypatch.setattr(gen, "vllm_installed", lambda: False)
    tasks = tmp_path / "t.jsonl"
    tasks.write_text('{"id": "a", "prompt": "p", "constraints": []}\n')
    result = CliRunner().invoke(app, ["generate", "--model", "smollm2-135m-instruct", "--tasks",
                                      str(tasks), "--out", str(tmp_path / "o.jsonl"),
                                      "--vllm-option", "dtype=float32"])
    assert result.exit_code == 2 and "vLLM is not installed here" in result.output
