"""Where one policy-GRPO step's time goes: generation, judging, verification + mixing, optimisation.

    .venv/bin/python bench/step_profile.py                       # configs/demo.yaml, 3 steps
    .venv/bin/python bench/step_profile.py --config X --steps 5 --set reward.mode=reasoning

Wraps the trainer's own methods with timers (wall and process CPU seconds) and trains a few
steps; the first step (warm-up, lazy imports) is reported apart. Optimisation = step time minus
generation and rewards (TRL's forward/backward for the loss and the optimizer update). Prints
one JSON object; the reward layer's share of a step is what RLMR/RLCS add over plain GRPO.
Peak resident memory is sampled every 50 ms and attributed to the part running at the time
(``setup`` = loading the models and building the trainer).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict

from quillrl.config import load_config
from quillrl.train.policy_run import PolicyConfig, build_trainer

PARTS = ("generation", "judging", "verification_mixing", "optimisation")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    out = tempfile.mkdtemp(prefix="quillrl-profile-")
    cfg = load_config(args.config, PolicyConfig, [f"max_steps={args.steps}", f"output_dir={out}",
                                                  "save_steps=100000", *args.set])
    trainer = build_trainer(cfg, __import__("pathlib").Path(out))
    timings: list[dict] = []
    current: dict = defaultdict(float)

    peak_rss: dict[str, float] = defaultdict(float)  # GB, per part, sampled every 50 ms
    phase = ["setup"]

    def sample_rss() -> None:
        import psutil

        me = psutil.Process()
        while True:
            peak_rss[phase[0]] = max(peak_rss[phase[0]], me.memory_info().rss / 1e9)
            time.sleep(0.05)

    __import__("threading").Thread(target=sample_rss, daemon=True).start()

    def timed(obj, name, part):
        original = getattr(obj, name)

        def wrapper(*a, **kw):
            w0, c0 = time.perf_counter(), time.process_time()
            outer, phase[0] = phase[0], part
            try:
                return original(*a, **kw)
            finally:
                phase[0] = outer
                current[part + "_wall"] += time.perf_counter() - w0
                current[part + "_cpu"] += time.process_time() - c0

        setattr(obj, name, wrapper)

    timed(trainer, "_generate", "generation")
    timed(trainer.group_rewards, "writing_rewards", "judging")
    timed(trainer.group_rewards, "passes", "verification_mixing")
    original_step = trainer.training_step

    def step(*a, **kw):
        phase[0] = "optimisation"  # the rest of a step: TRL's loss forward/backward and update
        current.clear()
        w0, c0 = time.perf_counter(), time.process_time()
        result = original_step(*a, **kw)
        row = dict(current)
        row["step_wall"], row["step_cpu"] = time.perf_counter() - w0, time.process_time() - c0
        for kind in ("wall", "cpu"):
            row[f"optimisation_{kind}"] = row[f"step_{kind}"] - sum(
                row.get(f"{p}_{kind}", 0.0) for p in PARTS[:3])
        timings.append(row)
        return result

    trainer.training_step = step
    trainer.train()
    # TRL calls training_step once per micro-batch: sum them into optimizer steps
    accum = trainer.args.gradient_accumulation_steps
    chunks = [timings[i:i + accum] for i in range(0, len(timings), accum)]
    timings = [{k: sum(t.get(k, 0.0) for t in c) for k in set().union(*c)} for c in chunks]
    steady = timings[1:] or timings
    mean = {k: sum(t.get(k, 0.0) for t in steady) / len(steady) for k in steady[0]}
    summary = {
        "config": args.config, "overrides": args.set, "steps_measured": len(steady),
        "first_step_wall": round(timings[0]["step_wall"], 2),
        **{f"{p}_{k}_s": round(mean.get(f"{p}_{k}", 0.0), 2) for p in PARTS for k in ("wall", "cpu")},
        "step_wall_s": round(mean["step_wall"], 2), "step_cpu_s": round(mean["step_cpu"], 2),
        "reward_layer_share_wall": round((mean.get("judging_wall", 0) + mean.get("verification_mixing_wall", 0))
                                         / mean["step_wall"], 3),
        # CPU seconds are what other processes on a shared machine do not inflate
        "peak_rss_gb_by_part": {k: round(v, 2) for k, v in peak_rss.items()},
        "judging_share_cpu": round(mean.get("judging_cpu", 0) / mean["step_cpu"], 3),
        "judge_shares_policy_weights": type(trainer.group_rewards.judge.backend).__name__
        if hasattr(trainer.group_rewards.judge, "backend") else None,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
