"""Run ``quillrl train policy`` (``train_policy``, as the CLI does) with TRL's colocated vLLM
generation, then check that the policy's weights reach vLLM; one JSON line on stdout.

    python tests/engines/_colocate_driver.py CONFIG OUTPUT_DIR [--no-shim] [--max-steps N]

``--no-shim`` replaces quillrl's vLLM-CPU shim by a no-op, to show what it prevents. Run by
tests/engines/test_vllm_colocate.py in a subprocess of its own: each run builds an engine in
process (TRL sets RANK/WORLD_SIZE/MASTER_* for vLLM), which cannot be taken down cleanly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("output_dir")
    parser.add_argument("--no-shim", action="store_true")
    parser.add_argument("--max-steps", type=int, default=None)
    opts = parser.parse_args()

    import torch

    from quillrl.config import load_config
    from quillrl.train import policy_run, vllm_cpu_compat

    if opts.no_shim:
        vllm_cpu_compat.live_weights_for_colocate = lambda args: contextlib.nullcontext(False)
    config = load_config(opts.config, policy_run.PolicyConfig)
    overrides = {"output_dir": opts.output_dir}
    if opts.max_steps:
        overrides["max_steps"] = opts.max_steps
    config = config.model_copy(update=overrides)

    built = {}
    build_trainer = policy_run.build_trainer

    def keep(cfg, output_dir):
        built["trainer"] = trainer = build_trainer(cfg, output_dir)
        return trainer

    policy_run.build_trainer = keep
    summary = policy_run.train_policy(config)

    # Read the synced weights back from vLLM: push the trained policy once more (what TRL does
    # before every generation), then compare layer 0's fused qkv_proj with the merged q/k/v.
    trainer = built["trainer"]
    vllm_model = trainer.vllm_generation.llm.llm_engine.model_executor.driver_worker.model_runner.model
    qkv = vllm_model.model.layers[0].self_attn.qkv_proj
    before = qkv.weight.detach().clone()
    trainer.vllm_generation.sync_weights()
    after = qkv.weight.detach().clone()
    peft_model = trainer.model
    attn = peft_model.base_model.model.model.layers[0].self_attn
    with torch.no_grad():
        base = torch.cat([m.base_layer.weight for m in (attn.q_proj, attn.k_proj, attn.v_proj)])
        peft_model.merge_adapter()
        merged = torch.cat([m.base_layer.weight.clone() for m in (attn.q_proj, attn.k_proj, attn.v_proj)])
        peft_model.unmerge_adapter()
    dtype = after.dtype
    print(json.dumps({
        "summary": summary,
        "cpu_linear_is_f_linear": qkv.cpu_linear is torch.nn.functional.linear,
        "vllm_dtype": str(dtype),
        "vllm_equals_merged": bool(torch.equal(after, merged.to(dtype))),
        "vllm_differs_from_base": bool(not torch.equal(after, base.to(dtype))),
        "max_abs_update_seen_by_vllm": float((after.float() - base.to(dtype).float()).abs().max()),
        # the second sync pushes the policy after its last optimizer step (TRL's own sync ran
        # before the last step's generation)
        "last_step_changed_vllm": bool(not torch.equal(before, after)),
    }), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
