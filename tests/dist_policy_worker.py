"""Run by tests/test_train_distributed.py under `torchrun --nproc_per_node 2` (CPU, gloo).

Trains one policy step and dumps, per process, the gathered reward columns its
``_calculate_rewards`` returned and the comparisons its judge made, so the test can check that
every process sees the same mixed rewards and that judging was split, not repeated.
"""

import json
import sys
from pathlib import Path

from quillrl.config import load_config
from quillrl.train.policy_run import PolicyConfig, build_trainer
from quillrl.train.lifecycle import leave_if_distributed


def main() -> None:
    model_dir, out_dir = sys.argv[1], Path(sys.argv[2])
    cfg = load_config(None, PolicyConfig, [
        f"model={model_dir}", "reward.judge=baseline:length", "reward.strategy=round_robin", "max_steps=1",
        "save_steps=10", f"output_dir={out_dir / 'run'}", "grpo.num_generations=4", "grpo.prompts_per_step=1",
        "grpo.max_completion_length=8", "mix.method=rlmr", "samples_per_step=0",
    ])
    trainer = build_trainer(cfg, out_dir / "run")
    rank = trainer.accelerator.process_index
    calls = []
    original = trainer._calculate_rewards

    def recording(*args, **kwargs):
        columns = original(*args, **kwargs)
        calls.append({"rewards": columns.tolist(), "judged": trainer.group_rewards.judge.usage.judgments})
        return columns

    trainer._calculate_rewards = recording
    trainer.train()
    (out_dir / f"rank{rank}.json").write_text(json.dumps({"world": trainer.accelerator.num_processes,
                                                          "calls": calls}))
    trainer.accelerator.end_training()  # destroy the process group before exit (see train.lifecycle)
    leave_if_distributed()  # and skip finalization, where gloo's threads can still abort


if __name__ == "__main__":  # not on import (pytest collects this folder)
    main()
