"""Policy GRPO end to end: a tiny-model run through the CLI, report, resume after SIGKILL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def write_config(tmp_path: Path, model_dir: Path, **over) -> Path:
    cfg = {
        "model": str(model_dir), "max_steps": 2, "save_steps": 1, "output_dir": str(tmp_path / "run"),
        "reward": {"judge": "baseline:length", "strategy": "round_robin"},
        "grpo": {"num_generations": 4, "prompts_per_step": 2, "max_completion_length": 12},
    }
    for key, value in over.items():
        section, _, name = key.partition("__")
        if name:
            cfg.setdefault(section, {})[name] = value
        else:
            cfg[key] = value
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def quillrl(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "quillrl.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}, **kw)


def metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x]


def test_two_step_run_writes_metrics_report_and_summary(tmp_path, tiny_model_dir):
    proc = quillrl("train", "policy", "--config", str(write_config(tmp_path, tiny_model_dir)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    run = tmp_path / "run"
    assert summary["steps"] == 2 and Path(summary["report"]).exists()
    rows = metrics(run)
    assert [r["step"] for r in rows] == [1, 2]
    for key in ("reward_mean", "writing_reward_mean", "constraint_pass_rate", "completion_length_mean",
                "entropy", "judge_invalid_rate", "seconds"):
        assert key in rows[0], key
    assert (run / "rewards.png").exists() and "![rewards](rewards.png)" in (run / "report.md").read_text()
    assert (run / "completions.jsonl").exists() and (run / "final").is_dir()
    # a second start without --resume refuses to overwrite the run
    again = quillrl("train", "policy", "--config", str(write_config(tmp_path, tiny_model_dir)))
    assert again.returncode == 2 and "--resume" in again.stderr


def test_bad_config_key_is_a_clear_error(tmp_path, tiny_model_dir):
    cfg = write_config(tmp_path, tiny_model_dir, grpo__num_generatons=4)
    proc = quillrl("train", "policy", "--config", str(cfg))
    assert proc.returncode == 2
    assert "grpo.num_generatons" in proc.stderr and "did you mean 'num_generations'" in proc.stderr


def test_resume_after_sigkill_keeps_written_metrics(tmp_path, tiny_model_dir, killed_at_checkpoint):
    cfg = write_config(tmp_path, tiny_model_dir, max_steps=6)
    run = tmp_path / "run"
    before = killed_at_checkpoint(["train", "policy", "--config", str(cfg)], run)
    assert 2 <= len(before) < 6
    resumed = quillrl("train", "policy", "--config", str(cfg), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert summary["resumed_from"] and summary["steps"] == 6
    after = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in after] == [1, 2, 3, 4, 5, 6]
    resumed_step = int(Path(summary["resumed_from"]).name.split("-")[1])
    assert after[:resumed_step] == before[:resumed_step]  # lines up to the checkpoint kept byte for byte
    # a finished run (checkpoint-6, max_steps 6) or a lowered --max-steps has nothing left to
    # train: refused by name, not run one step past the limit (transformers would) or silently
    for max_steps in ("6", "3"):
        done = quillrl("train", "policy", "--config", str(cfg), "--resume", "--max-steps", max_steps)
        assert done.returncode == 2 and "nothing is left to train" in done.stderr, done.stderr[-2000:]
    assert (run / "metrics.jsonl").read_text().splitlines() == after


def test_violator_max_advantage_is_negative_under_rlmr(tmp_path, tiny_model_dir):
    """Tasks whose constraint about half of the samples pass: mixed groups must show < 0."""
    tasks = tmp_path / "tasks.jsonl"
    # a random tiny model writes 1-3 "words" in 8 tokens, so "at most 2" splits most groups
    rows = [{"id": f"t{i}", "prompt": f"Write about {w}.",
             "constraints": [{"id": "creative:word_range", "kwargs": {"max_words": 2}}]}
            for i, w in enumerate(["the sea", "a fox", "the moon", "a storm"])]
    tasks.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = write_config(tmp_path, tiny_model_dir, tasks=str(tasks), max_steps=3,
                       grpo__temperature=1.5, grpo__max_completion_length=8)
    proc = quillrl("train", "policy", "--config", str(cfg))
    assert proc.returncode == 0, proc.stderr[-3000:]
    values = [r["violator_max_advantage"] for r in metrics(tmp_path / "run")
              if r.get("violator_max_advantage") is not None]
    assert values, "no mixed group in 3 steps; raise the temperature or the steps"
    assert all(v < 0 for v in values)


@pytest.mark.integration
def test_two_step_lora_run_on_the_embedded_model(tmp_path, embedded_model_dir):
    """The main job's path at a tiny budget: embedded policy with LoRA, embedded GenRM judge."""
    cfg = write_config(tmp_path, embedded_model_dir, model="smollm2-135m-instruct",
                       reward__judge="genrm:local:smollm2-135m-instruct", reward__mode="verdict",
                       reward__strategy="pivot", grpo__max_completion_length=16, grpo__prompts_per_step=1)
    proc = quillrl("train", "policy", "--config", str(cfg))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["judge_invalid_rate"] is not None and r["judge_invalid_rate"] < 1 for r in rows)
    assert (tmp_path / "run" / "final" / "adapter_model.safetensors").exists()


def test_a_judge_on_the_policys_own_model_shares_its_base_weights(tmp_path, tiny_model_dir):
    """genrm:local:<policy model> with LoRA: the judge runs on the policy's weights with the
    adapter disabled, no second copy, and reads what a separately loaded model reads, even
    once the adapter has moved away from zero."""
    import torch

    from quillrl.backends.base_weights import BaseWeightsBackend
    from quillrl.config import load_config
    from quillrl.judges import make_judge
    from quillrl.train.policy_run import PolicyConfig, build_trainer, judges_with_policy_weights

    path = write_config(tmp_path, tiny_model_dir, reward__judge=f"genrm:local:{tiny_model_dir}",
                        reward__strategy="pivot", reward__mode="verdict", lora__enabled=True)
    cfg = load_config(path, PolicyConfig, [])
    assert judges_with_policy_weights(cfg)
    assert not judges_with_policy_weights(cfg.model_copy(update={"reward": cfg.reward.model_copy(
        update={"share_policy_weights": False})}))
    trainer = build_trainer(cfg, tmp_path / "run")
    judge = trainer.group_rewards.judge
    assert isinstance(judge.backend, BaseWeightsBackend) and judge.backend.model is trainer.model
    with torch.no_grad():  # move the adapter: the policy changes, its base (the judge) must not
        for name, param in trainer.model.named_parameters():
            if "lora_B" in name:
                param.add_(0.5)
    pairs = [("Write about the sea.", "The knight walked home.", "a fox"),
             ("Write a haiku.", "a fox", "Once upon a time a fox wrote a story about the sea.")]
    with make_judge(f"genrm:local:{tiny_model_dir}", mode="verdict", swap=True,
                    backend_options={"device": "cpu"}) as separate:
        want = [j.p_a for j in separate.compare_many(pairs)]
    got = [j.p_a for j in judge.compare_many(pairs)]
    assert got == pytest.approx(want, abs=1e-5)
    # and the adapter is on again for the policy after judging
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        on = trainer.model(input_ids=ids).logits
        with trainer.model.disable_adapter():
            off = trainer.model(input_ids=ids).logits
    assert not torch.allclose(on, off)
