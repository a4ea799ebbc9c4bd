"""Judge training end to end on a tiny random model: genrm-sft, genrm-grpo (with SIGKILL + resume),
bt-rm through the CLI; the SFT loss mask; the shaped reward column; trained judges by spec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from quillrl.distill import examples_for
from quillrl.judges import Judgment, OrderResult, make_judge
from quillrl.judges.template import REASONING_PREFILL, as_conversation, judge_prompt
from quillrl.rewards import shape_by_entropy
from quillrl.train.genrm_grpo_trainer import EntropyShapedVerdictReward

REPO = Path(__file__).resolve().parents[1]
# a sampled judgment: the continuation of the reasoning prefill "<analysis>\nCoherence:"
REPLY = " A holds.\n</analysis>\n<verdict>{}</verdict>"
PREFILLED = [{"role": "user", "content": "x"}, {"role": "assistant", "content": REASONING_PREFILL}]


def quillrl(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "quillrl.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}, **kw)


def summary_of(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x]


def write_yaml(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> SimpleNamespace:
    """Six labelled pairs, and their SFT examples as `distill` writes them (both orders)."""
    root = tmp_path_factory.mktemp("genrm-data")
    pairs = [{"id": f"p{i}", "prompt": f"Write about the sea {i}.", "chosen": "The knight walked home; "
              "the moon was bright and the road was long.", "rejected": "a fox"} for i in range(6)]
    (root / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    from quillrl.data import PreferencePair

    with (root / "sft.jsonl").open("w") as f:
        for p in pairs:
            kept = Judgment(p_a=0.9, verdict="A", entropy=0.5, orders=(
                OrderResult("AB", 0.9, "A", True, analysis="Coherence: A holds."),
                OrderResult("BA", 0.1, "B", True, analysis="Coherence: B holds.")))
            for example in examples_for(PreferencePair(**p), kept):
                f.write(json.dumps(example) + "\n")
    return SimpleNamespace(root=root, pairs=root / "pairs.jsonl", sft=root / "sft.jsonl", rows=pairs)


def run_cli(verb: str, cfg: dict, out: Path, *extra: str) -> dict:
    config = write_yaml(out.with_suffix(".yaml"), {**cfg, "output_dir": str(out)})
    return summary_of(quillrl("train", verb, "--config", str(config), *extra))


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory, tiny_model_dir, data) -> dict:
    out = tmp_path_factory.mktemp("sft") / "run"
    return run_cli("genrm-sft", {"model": str(tiny_model_dir), "data": str(data.sft), "max_steps": 2,
                                 "save_steps": 1, "sft": {"batch_size": 2, "max_length": 4096}}, out)


@pytest.fixture(scope="module")
def bt_run(tmp_path_factory, tiny_model_dir, data) -> dict:
    out = tmp_path_factory.mktemp("bt") / "run"
    return run_cli("bt-rm", {"model": str(tiny_model_dir), "pairs": str(data.pairs), "max_steps": 2,
                             "save_steps": 1, "bt": {"batch_size": 2}}, out)


# -- genrm-sft ------------------------------------------------------------------------------------

def test_genrm_sft_two_steps(sft_run):
    run = Path(sft_run["output_dir"])
    assert sft_run["steps"] == 2 and sft_run["examples"] == 12 and sft_run["loss_mode"] == "completion_only"
    assert [r["step"] for r in metrics(run)] == [1, 2]
    assert {"loss", "mean_token_accuracy", "seconds"} <= set(metrics(run)[0])
    assert "![fit](fit.png)" in (run / "report.md").read_text()
    assert (run / "final" / "adapter_config.json").exists()


def test_genrm_sft_output_judges_by_spec_and_teaches(sft_run, data, tmp_path):
    assert sft_run["judge"] == f"genrm:local:{sft_run['final']}"
    with make_judge(sft_run["judge"], mode="verdict", swap=True) as judge:
        j = judge.compare("Write about the sea.", "The knight walked home.", "a fox")
    assert j.valid and 0.0 < j.p_a < 1.0 and len(j.orders) == 2
    # and as a distillation teacher (a random tiny model writes no valid judgment: all dropped)
    from typer.testing import CliRunner

    from quillrl.cli import app

    out = tmp_path / "student.jsonl"
    result = CliRunner().invoke(app, ["distill", "--pairs", str(data.pairs), "--teacher", sft_run["judge"],
                                      "--out", str(out), "--limit", "1", "--max-new-tokens", "4"])
    assert result.exit_code == 0, result.output[-2000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["judged"] == 1 and got["kept"] + sum(got["dropped"].values()) == 1


MARKED_CHATML = (  # ChatML with {% generation %} markers around the assistant's reply
    "{% for m in messages %}{% if m['role'] == 'assistant' %}{{ '<|im_start|>assistant\n' }}"
    "{% generation %}{{ m['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


@pytest.mark.parametrize("template, mode", [(None, "completion_only"), (MARKED_CHATML, "assistant_only")])
def test_sft_loss_is_on_the_reply_only(tmp_path, tiny_model_dir, data, monkeypatch, template, mode):
    from quillrl.train import genrm_sft_run, lifecycle

    load = lifecycle.load_trainable

    def with_template(*args, **kw):
        model, tokenizer, peft = load(*args, **kw)
        tokenizer.chat_template = template or tokenizer.chat_template
        return model, tokenizer, peft

    monkeypatch.setattr(lifecycle, "load_trainable", with_template)
    cfg = genrm_sft_run.GenRMSFTConfig(model=str(tiny_model_dir), data=str(data.sft), max_examples=1,
                                       output_dir=str(tmp_path), sft={"max_length": 4096})
    trainer, counts = genrm_sft_run.build_trainer(cfg, tmp_path)
    row, tokenizer = trainer.train_dataset[0], trainer.processing_class
    trained = tokenizer.decode([t for t, label in zip(row["input_ids"], row["labels"]) if label != -100])
    reply = (row["completion"] if mode == "completion_only" else row["messages"])[-1]["content"]
    assert counts["loss_mode"] == mode and reply.startswith("<analysis>")
    # the reply and its end-of-turn token, nothing of the prompt (ChatML's trailing newline aside)
    assert trained.rstrip("\n") == reply + "<|im_end|>"


# -- bt-rm ----------------------------------------------------------------------------------------

def test_bt_rm_two_steps_loads_as_scalar_judge(bt_run):
    import torch
    from peft import PeftModel

    from quillrl.judges.scalar import ScalarRMJudge
    from quillrl.train.bt_rm_run import load_reward_model

    run = Path(bt_run["output_dir"])
    assert bt_run["steps"] == 2 and bt_run["pairs"] == 6 and bt_run["judge"] == f"scalar:{bt_run['final']}"
    assert {"loss", "accuracy", "margin"} <= set(metrics(run)[-1])
    pair = ("Write about the sea.", "The knight walked home.", "a fox")
    with make_judge(bt_run["judge"]) as judge:
        j = judge.compare(*pair)
    assert j.valid and 0.0 < j.p_a < 1.0
    # the merged model scores exactly as the trained adapter (with its score head) on the base
    base, tokenizer = load_reward_model(json.loads((run / "final_adapter" / "adapter_config.json")
                                                   .read_text())["base_model_name_or_path"], seed=1)
    adapter = PeftModel.from_pretrained(base, str(run / "final_adapter"))
    with torch.no_grad():
        r_a, r_b = ScalarRMJudge(model=adapter, tokenizer=tokenizer).score([pair[0]] * 2, list(pair[1:]))
    assert (j.extra["r_a"], j.extra["r_b"]) == pytest.approx((r_a, r_b), abs=1e-5)


# -- genrm-grpo: the reward -----------------------------------------------------------------------

def test_reward_column_is_shape_by_entropy_of_parsed_verdicts():
    # p(A) per valid completion, in order: 0.5 (H = 1), 0.8 (H = 0.7219), 1.0 (H = 0)
    probs = iter([[0.25, 0.25], [0.4, 0.1], [0.3, 0.0]])
    logged: dict[str, list[float]] = {}
    reward = EntropyShapedVerdictReward(lambda probes: np.array([next(probs) for _ in probes]), floor=0.2)
    completions = [REPLY.format("A"), REPLY.format("B"), " cut off at the token lim", REPLY.format("A")]
    got = reward([PREFILLED] * 4, completions, label=["A", "A", "B", "A"],
                 log_metric=lambda k, v: logged.setdefault(k, []).append(v))
    h = -(0.8 * np.log2(0.8) + 0.2 * np.log2(0.2))
    # right at H=1: 1; wrong at H=0.7219: -(0.2 + 0.8·0.2781); invalid: -1.5; right at H=0: 0.2
    assert got == pytest.approx([1.0, -(0.2 + 0.8 * (1 - h)), -1.5, 0.2])
    assert got == pytest.approx(shape_by_entropy([True, False, None, True], [1.0, h, None, 0.0]).tolist())
    assert np.mean(logged["accuracy"]) == 0.5 and np.mean(logged["invalid_rate"]) == 0.25
    assert logged["entropy_correct"] == pytest.approx([1.0, 0.0]) and logged["entropy_wrong"] == pytest.approx([h])
    assert np.mean(logged["confident_correct_share"]) == 0.25
    # one group (one prompt): the spread of H, and the reward's std shaped vs unshaped on the same samples
    assert logged["entropy_spread"] == pytest.approx([np.std([1.0, h, 0.0])])
    assert logged["group_reward_std"] == pytest.approx([np.std(got)])
    assert logged["group_reward_std_unshaped"] == pytest.approx([np.std([1.0, -1.0, -1.5, 1.0])])
    assert logged["reward_unshaped"] == [1.0, -1.0, -1.5, 1.0]


def test_trainer_reward_reads_its_own_policy_at_the_verdict_position(tmp_path, tiny_model_dir, data):
    import torch

    from quillrl.train.genrm_grpo_run import GenRMGRPOConfig, build_trainer

    cfg = GenRMGRPOConfig(model=str(tiny_model_dir), pairs=str(data.pairs), output_dir=str(tmp_path),
                          shaping={"floor": 0.3}, grpo={"num_generations": 2, "prompts_per_step": 1})
    trainer, _ = build_trainer(cfg, tmp_path)
    row = trainer.train_dataset[0]
    texts = [REPLY.format("A"), REPLY.format("B"), " x</analysis>"]
    inputs = [{"prompt": row["prompt"], "label": row["label"], "pair_id": row["pair_id"]}] * 3
    got = trainer._calculate_rewards(inputs, [row["prompt"]] * 3,
                                     [[{"role": "assistant", "content": t}] for t in texts], [[1]] * 3)
    # expected: a plain forward pass of the policy over prompt + prefill + reply up to "<verdict>"
    model, tok = trainer.model, trainer.processing_class
    assert row["prompt"][-1] == {"role": "assistant", "content": REASONING_PREFILL}
    head = tok.apply_chat_template(row["prompt"][:-1], tokenize=False, add_generation_prompt=True)
    reply = REASONING_PREFILL + texts[0].split("<verdict>")[0] + "<verdict>"
    ids = tok(head + reply, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        p = torch.softmax(model(torch.tensor([ids])).logits[0, -1].float(), -1)
    p_a = float(p[tok.convert_tokens_to_ids("A")] / (p[tok.convert_tokens_to_ids("A")]
                                                     + p[tok.convert_tokens_to_ids("B")]))
    h = -(p_a * np.log2(p_a) + (1 - p_a) * np.log2(1 - p_a))
    expected = shape_by_entropy([row["label"] == "A", row["label"] == "B", None], [h, h, None], floor=0.3)
    assert got[:, 0].tolist() == pytest.approx(expected.tolist(), abs=1e-5)
    # and generation continues the prefill from exactly the judge's tokens, not a new turn
    ids, _, _ = trainer._tokenize_prompts([row["prompt"]])
    assert ids == [tok(head + REASONING_PREFILL, add_special_tokens=False)["input_ids"]]


def test_prompts_draw_the_order_per_pair_and_label_the_chosen_slot(tmp_path, tiny_model_dir, data):
    from quillrl.models import load_tokenizer
    from quillrl.train.genrm_grpo_run import GenRMGRPOConfig, judge_prompts

    tok = load_tokenizer(tiny_model_dir)
    cfg = GenRMGRPOConfig(pairs=str(data.pairs), seed=3)
    rows, counts = judge_prompts(cfg, tok)
    again, _ = judge_prompts(cfg, tok)
    assert rows.to_list() == again.to_list() and counts["pairs"] == 6
    assert {r["label"] for r in rows} == {"A", "B"}  # both orders occur
    by_id = {p["id"]: p for p in data.rows}
    for r in rows:
        pair = by_id[r["pair_id"]]
        a, b = (pair["chosen"], pair["rejected"]) if r["label"] == "A" else (pair["rejected"], pair["chosen"])
        assert r["prompt"] == as_conversation(judge_prompt(pair["prompt"], a, b))
    from quillrl.errors import ConfigError

    with pytest.raises(ConfigError, match="6 longer than max_prompt_tokens=16"):
        judge_prompts(GenRMGRPOConfig(pairs=str(data.pairs), max_prompt_tokens=16), tok)


# -- genrm-grpo: end to end -----------------------------------------------------------------------

def test_genrm_grpo_runs_and_resumes_after_sigkill(tmp_path, tiny_model_dir, data, killed_at_checkpoint):
    run = tmp_path / "run"
    cfg = write_yaml(tmp_path / "grpo.yaml", {
        "model": str(tiny_model_dir), "pairs": str(data.pairs), "max_steps": 4, "save_steps": 1,
        "output_dir": str(run), "grpo": {"num_generations": 2, "prompts_per_step": 1,
                                         "max_completion_length": 6}})
    before = killed_at_checkpoint(["train", "genrm-grpo", "--config", str(cfg)], run)
    assert 2 <= len(before) < 4
    summary = summary_of(quillrl("train", "genrm-grpo", "--config", str(cfg), "--resume"))
    assert summary["resumed_from"] and summary["steps"] == 4 and summary["judge"].startswith("genrm:local:")
    after = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in after] == [1, 2, 3, 4]
    resumed_step = int(Path(summary["resumed_from"]).name.split("-")[1])
    assert after[:resumed_step] == before[:resumed_step]
    row = json.loads(after[-1])
    for key in ("accuracy", "invalid_rate", "shaped_reward_mean", "shaped_reward_std", "reward_std",
                "confident_correct_share", "frac_reward_zero_std", "completion_length_mean", "seconds"):
        assert key in row, key
    # a random tiny model writes no valid judgment: every sample is invalid, at -1 - 0.5
    assert row["invalid_rate"] == 1.0 and row["shaped_reward_mean"] == -1.5
    report = (run / "report.md").read_text()
    assert "![judge](judge.png)" in report and "![genrm_spread](genrm_spread.png)" in report
    assert (run / "final" / "adapter_config.json").exists() and (run / "completions.jsonl").exists()


def test_forced_verdicts_let_shaping_change_the_update(tmp_path, tiny_model_dir, data):
    """A random tiny model never writes a verdict: unforced, every sample is invalid and no
    update can differ (the test above). Forced, sampled chains that stop in different places
    give different entropies, and shaped (floor 0.2) and unshaped (floor 1) runs from the same
    seed and the same first samples end with different adapters."""
    from safetensors.numpy import load_file

    runs = {}
    for name, floor in (("shaped", 0.2), ("unshaped", 1.0)):
        runs[name] = tmp_path / name
        run_cli("genrm-grpo", {
            "model": str(tiny_model_dir), "pairs": str(data.pairs), "max_steps": 2, "save_steps": 2,
            "shaping": {"floor": floor, "force_verdict": True},
            "grpo": {"num_generations": 4, "prompts_per_step": 1, "max_completion_length": 6,
                     "learning_rate": 1e-3}}, runs[name])
    rows = {name: metrics(run) for name, run in runs.items()}
    for name in runs:
        assert all(r["invalid_rate"] == 0.0 and r["forced_rate"] == 1.0 for r in rows[name]), rows[name]
    first = rows["shaped"][0]
    assert first["entropy_spread"] > 0  # the chains differ, so their verdict entropies do
    assert first["group_reward_std"] > 0
    # the same samples at step 1 (same seed, same weights), scored both ways by each run
    assert first["reward_unshaped"] == pytest.approx(rows["unshaped"][0]["reward_unshaped"])
    shaped, unshaped = (load_file(str(runs[n] / "final" / "adapter_model.safetensors")) for n in runs)
    assert max(float(np.abs(shaped[k] - unshaped[k]).max()) for k in shaped) > 0


@pytest.mark.parametrize("name, cls", [
    ("genrm_sft.yaml", "quillrl.train.genrm_sft_run:GenRMSFTConfig"),
    ("genrm_grpo.yaml", "quillrl.train.genrm_grpo_run:GenRMGRPOConfig"),
    ("genrm_grpo_unshaped.yaml", "quillrl.train.genrm_grpo_run:GenRMGRPOConfig"),
    ("bt_rm.yaml", "quillrl.train.bt_rm_run:BTRMConfig"),
    ("bt_rm_storyer.yaml", "quillrl.train.bt_rm_run:BTRMConfig"),
])
def test_shipped_configs_validate(name, cls):
    import importlib

    from quillrl.config import load_config

    module, _, attr = cls.partition(":")
    cfg = load_config(REPO / "configs" / name, getattr(importlib.import_module(module), attr))
    if name.startswith("genrm_grpo"):
        assert cfg.shaping.floor == (1.0 if "unshaped" in name else 0.2)


def test_bt_rm_long_pairs_are_dropped_or_cut_and_counted(tmp_path, tiny_model_dir, data):
    from quillrl.judges.scalar import rm_input_ids
    from quillrl.models import load_tokenizer
    from quillrl.train.bt_rm_run import BTRMConfig, preference_dataset

    tok = load_tokenizer(tiny_model_dir)
    rows = [dict(r) for r in data.rows]
    rows[0]["chosen"] = "The knight walked home; the moon was bright. " * 40
    pairs = tmp_path / "long.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dropped, counts = preference_dataset(BTRMConfig(pairs=str(pairs), bt={"max_length": 100}), tok)
    assert counts == {"pairs": 5, "dropped_too_long": 1, "truncated": 0}
    cut, counts = preference_dataset(BTRMConfig(pairs=str(pairs), bt={"max_length": 100, "long_pairs": "truncate"}), tok)
    assert counts == {"pairs": 6, "dropped_too_long": 0, "truncated": 1}
    assert max(len(r["chosen_ids"]) for r in cut) <= 100
    assert rm_input_ids(tok, rows[0]["prompt"], rows[0]["chosen"], 100)[0] in [r["chosen_ids"] for r in cut]
