"""The GPU paths, checked without a GPU: what reaches TRL for vLLM generation (the device runs
are not possible on this machine; docs/scale.md says what to run on one)."""

from __future__ import annotations

import pytest

from quillrl.config import validate_config
from quillrl.errors import ConfigError
from quillrl.train.policy_run import PolicyConfig, grpo_trl_args

COLOCATE = {"use_vllm": True, "vllm_mode": "colocate", "vllm_gpu_memory_utilization": 0.3,
            "vllm_enable_sleep_mode": True, "vllm_tensor_parallel_size": 1}


def test_vllm_colocate_settings_reach_grpo_config_unchanged(tmp_path):
    config = validate_config({"trl": COLOCATE, "grpo": {"num_generations": 8, "prompts_per_step": 2}},
                             PolicyConfig)
    args = grpo_trl_args(config, tmp_path)
    for key, value in COLOCATE.items():
        assert getattr(args, key) == value
    # TRL generates num_generations per prompt on every process; our group logic gathers them
    assert args.num_generations == 8 and args.per_device_train_batch_size == 16


def test_vllm_server_mode_and_a_typo_in_trl_keys(tmp_path):
    server = {"use_vllm": True, "vllm_mode": "server", "vllm_server_base_url": "http://127.0.0.1:8000"}
    args = grpo_trl_args(validate_config({"trl": server}, PolicyConfig), tmp_path)
    assert args.vllm_mode == "server" and args.vllm_server_base_url == "http://127.0.0.1:8000"
    with pytest.raises(ConfigError, match="vllm_gpu_memory_utilisation"):
        grpo_trl_args(validate_config({"trl": {"vllm_gpu_memory_utilisation": 0.3}}, PolicyConfig), tmp_path)
