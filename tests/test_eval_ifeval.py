"""``eval ifeval`` against lm-eval's own ``ifeval`` task on a tiny random model, called here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quillrl.eval.ifeval import join_responses, summarize, verify_task
from quillrl.constraints import read_tasks
from quillrl.data import read_responses
from quillrl.eval.generate import generate_responses
from quillrl.eval.ifeval import lm_eval_ifeval, parity_report

# IFEval-format lines (key, prompt, instruction_id_list, kwargs): constraints random text can
# pass (no comma, a short length) and ones it cannot, so verdicts differ from prompt to prompt.
RAW = [
    (1, "Write a poem about the sea. Do not use any commas.", ["punctuation:no_comma"], [{}]),
    (2, "List three fruits in fewer than 60 words.",
     ["length_constraints:number_words"], [{"relation": "less than", "num_words": 60}]),
    (3, "Tell a story in lowercase letters only, with a title in double angular brackets.",
     ["change_case:english_lowercase", "detectable_format:title"], [{}, {}]),
    (4, "hi", ["punctuation:no_comma", "length_constraints:number_words"],
     [{}, {"relation": "at least", "num_words": 5}]),
    (5, "Describe a cat. Wrap your entire response with double quotation marks.",
     ["startend:quotation"], [{}]),
    (6, "Write about rain without the words wet or cloud.",
     ["keywords:forbidden_words"], [{"forbidden_words": ["wet", "cloud"]}]),
    (7, "Answer in English: what is a river?", ["language:response_language"],
     [{"language": "en"}]),
]


@pytest.fixture(scope="module")
def varied_model_dir(tmp_path_factory) -> Path:
    """The tiny model with untied, larger random weights: with tied embeddings a random model
    repeats the prompt's last token ("\\n") forever, and every response would be the same."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from quillrl.testing import build_tiny_model

    directory = build_tiny_model(tmp_path_factory.mktemp("tiny-varied"))
    config = AutoConfig.from_pretrained(directory)
    config.tie_word_embeddings, config.initializer_range = False, 0.2
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = config.pad_token_id
    model.generation_config.eos_token_id = config.eos_token_id
    model.save_pretrained(directory, safe_serialization=True)
    return directory


@pytest.fixture(scope="module")
def raw_tasks(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ifeval") / "input_data.jsonl"
    path.write_text("".join(json.dumps({"key": k, "prompt": p, "instruction_id_list": ids,
                                        "kwargs": kw}) + "\n" for k, p, ids, kw in RAW))
    return path


def test_same_texts_verdicts_and_figures_as_lm_eval(varied_model_dir, raw_tasks, tmp_path):
    limit, tokens, batch = 6, 24, 4  # 6 of 7 prompts (--limit); batches of 4 and 2, padded
    tasks = read_tasks(raw_tasks).records[:limit]
    out = tmp_path / "responses.jsonl"
    generate_responses(str(varied_model_dir), tasks, out, max_new_tokens=tokens,
                       batch_size=batch, progress=False)
    responses = list(read_responses(out).records)
    joined, _ = join_responses(tasks, responses)
    rows = [verify_task(task, response) for task, response in joined]

    lm = lm_eval_ifeval(varied_model_dir, raw_tasks, limit=limit, max_gen_toks=tokens,
                        batch_size=batch)
    report = parity_report(rows, summarize(rows), {r.id: r.response for r in responses}, lm)

    assert report["n"] == limit and lm["n"] == limit
    assert report["same_text"] == limit, report["text_differs"]
    assert report["same_verdicts"] == limit, report["verdicts_differ"]
    assert report["parity"], report["metrics"]
    # the comparison is not vacuous: distinct texts, and verdicts of both kinds
    assert len({r.response for r in responses}) == limit
    flat = [c["strict"] for row in rows for c in row["constraints"]]
    assert any(flat) and not all(flat)


def test_parity_report_names_a_difference(varied_model_dir):
    rows = [{"id": "1", "constraints": [{"strict": True, "loose": True}]},
            {"id": "2", "constraints": [{"strict": False, "loose": True}]}]
    lm = {"n": 2, "responses": {"1": "a", "2": "b"},
          "verdicts": {"1": {"strict": [True], "loose": [True]},
                       "2": {"strict": [False], "loose": [False]}},
          "metrics": {"prompt_level_strict_acc": 0.5, "inst_level_strict_acc": 0.5,
                      "prompt_level_loose_acc": 0.5, "inst_level_loose_acc": 0.5}}
    summary = summarize([{**r, "strict": r["constraints"][0]["strict"],
                          "loose": r["constraints"][0]["loose"]} for r in rows])
    report = parity_report(rows, summary, {"1": "a", "2": "B"}, lm)
    assert report["text_differs"] == ["2"] and report["verdicts_differ"] == ["2"]
    assert report["metrics"]["prompt_level_loose_acc"]["abs_diff"] == 0.5
    assert not report["parity"]


@pytest.mark.parametrize("verb", ["ifeval", "ifbench"])  # ifbench: the same run, IFBench's file
def test_eval_ifeval_cli_prints_the_four_metrics(varied_model_dir, raw_tasks, tmp_path, verb):
    from typer.testing import CliRunner

    from quillrl.cli import app

    out, verdicts = tmp_path / "r.jsonl", tmp_path / "v.jsonl"
    args = ["eval", verb, "--model", str(varied_model_dir), "--tasks", str(raw_tasks),
            "--limit", "3", "--max-new-tokens", "8", "--out", str(out), "--verdicts", str(verdicts)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["n"] == 3 and summary["generated"] == 3 and summary["out"] == str(out)
    for key in ("prompt_level_strict_acc", "inst_level_strict_acc", "prompt_level_loose_acc",
                "inst_level_loose_acc"):
        assert 0.0 <= summary[key] <= 1.0
    assert len(verdicts.read_text().splitlines()) == 3
    # a rerun resumes: nothing left to generate, the same figures
    again = json.loads(CliRunner().invoke(app, args).stdout.strip().splitlines()[-1])
    assert again["generated"] == 0 and again["resumed"] == 3
    assert again["prompt_level_loose_acc"] == summary["prompt_level_loose_acc"]


def test_eval_ifeval_refuses_a_missing_model(raw_tasks, tmp_path):
    from typer.testing import CliRunner

    from quillrl.cli import app

    result = CliRunner().invoke(app, ["eval", "ifeval", "--model", str(tmp_path / "none"),
                                      "--tasks", str(raw_tasks), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "Accepted forms" in result.output and "openai:" in result.output
