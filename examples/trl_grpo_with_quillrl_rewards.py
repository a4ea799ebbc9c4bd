"""Plain TRL GRPO with quillrl's per-sample rewards: no quillrl trainer involved.

    python examples/trl_grpo_with_quillrl_rewards.py                  # embedded SmolLM2, 2 steps
    python examples/trl_grpo_with_quillrl_rewards.py --model DIR      # any local HF model directory

``ConstraintPassReward`` (1.0 when a completion passes every verifiable constraint of its task)
drops into ``GRPOTrainer(reward_funcs=...)`` as is; so does ``ScalarRMReward(path)`` for a
Bradley-Terry reward model trained with ``quillrl train bt-rm``. Group-level rewards (pairwise
GenRM judging, RLMR mixing) need whole groups across processes: use ``quillrl train policy``
(``MixedRewardGRPOTrainer``) for those.
"""

import argparse
import json

from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from quillrl.constraints import read_tasks
from quillrl.data import resolve_tasks_path
from quillrl.models import load
from quillrl.scoring.reward_funcs import ConstraintPassReward


def length_penalty(completions, **kwargs):
    """A second, ordinary TRL reward: shorter is slightly better (TRL sums weighted rewards)."""
    return [-len(c[-1]["content"]) / 1000 for c in completions]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--output-dir", default="runs/trl-example")
    parser.add_argument("--max-steps", type=int, default=2)
    args = parser.parse_args()

    tasks = read_tasks(resolve_tasks_path("bundled:creative_tasks")).records[:8]
    # The constraints travel as a JSON string column: TRL hands every extra column to the
    # reward functions, one value per completion.
    dataset = Dataset.from_list([
        {"prompt": [{"role": "user", "content": t.prompt}],
         "constraints": json.dumps([c.model_dump() for c in t.constraints])} for t in tasks])

    model, tokenizer = load(args.model, trainable=True)
    trainer = GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=[ConstraintPassReward(), length_penalty],
        train_dataset=dataset,
        args=GRPOConfig(output_dir=args.output_dir, max_steps=args.max_steps, num_generations=4,
                        per_device_train_batch_size=4, max_completion_length=32, use_cpu=True,
                        bf16=False, report_to="none", logging_steps=1, save_strategy="no"),
    )
    trainer.train()
    print(json.dumps({"steps": trainer.state.global_step,
                      "constraint_pass_mean": trainer.state.log_history[-2].get("rewards/constraint_pass/mean")}))


if __name__ == "__main__":
    main()
