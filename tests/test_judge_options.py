"""JudgeOptions: the judge options of `judge` and `eval`, checked once, built the same way, and
recording the settings the built judge has."""

from __future__ import annotations

import pytest

from quillrl.errors import ConfigError
from quillrl.judges.options import JudgeOptions, judge_settings


@pytest.mark.parametrize("spec, options", [
    ("baseline:length", {}),
    ("baseline:random:3", {}),
    ("genrm:local:{model}", {"mode": "verdict", "swap": True}),
    ("genrm:local:{model}", {"mode": "reasoning", "force_verdict": True, "max_new_tokens": 8,
                             "device": "cpu", "dtype": "float32", "backend_batch_size": 2}),
])
def test_settings_known_before_the_build_are_the_built_judges(spec, options, tiny_model_dir):
    spec = spec.format(model=tiny_model_dir)
    options = JudgeOptions(**options)
    with options.build(spec) as judge:
        assert options.judge_settings(spec) == judge_settings(judge, spec)
        if spec.startswith("genrm:"):
            assert (judge.mode, judge.swap) == (options.mode, options.swap)
            assert judge.backend.batch_size == (options.backend_batch_size or judge.backend.batch_size)


def test_remote_settings_reach_the_openai_backend():
    options = JudgeOptions(timeout=5, attempts=2)
    options.check_used(["genrm:openai:http://127.0.0.1:9/v1#m"])
    with options.build("genrm:openai:http://127.0.0.1:9/v1#m") as judge:
        assert (judge.backend.timeout, judge.backend.attempts) == (5, 2)


@pytest.mark.parametrize("values, message", [
    ({"mode": "bogus"}, "--mode must be one of reasoning, verdict"),
    ({"dtype": "float8"}, "--dtype must be one of"),
    ({"device": "tpu"}, "--device must be cpu, cuda, cuda:N or mps"),
    ({"attempts": 0}, "--attempts must be between 1 and 100"),
    ({"timeout": 0.0}, "--timeout must be a positive number"),
    ({"backend_batch_size": 0}, "--backend-batch-size must be at least 1"),
    ({"mode": "verdict", "force_verdict": True}, "--force-verdict closes an unfinished analysis"),
])
def test_values_no_judge_accepts_are_refused(values, message):
    with pytest.raises(ConfigError, match=message):
        JudgeOptions(**values)


@pytest.mark.parametrize("values, specs, message", [
    ({"swap": True}, ["baseline:length"], "--swap applies only to GenRM judges"),
    ({"device": "cpu"}, ["genrm:openai:http://h:1/v1#m"], "--device applies only to local GenRM"),
    ({"dtype": "float32"}, ["genrm:openai:http://h:1/v1#m"], "--dtype applies only to in-process"),
    ({"timeout": 3.0}, ["genrm:local:m"], "--timeout applies only to OpenAI-compatible"),
    ({"attempts": 2}, [], r"--attempts applies only to OpenAI-compatible GenRM judges "
                          r"\(genrm:openai:...\), and none is given \(no --judge\)"),
    ({"vllm_options": {"seed": 1}}, ["genrm:local:m"], "--vllm-option applies only to vLLM"),
])
def test_an_option_no_given_judge_uses_is_refused(values, specs, message):
    with pytest.raises(ConfigError, match=message):
        JudgeOptions(**values).check_used(specs)


def test_an_option_one_of_the_judges_uses_passes_and_names_only_its_spec():
    options = JudgeOptions(device="cpu", vllm_options={"dtype": "float32"})
    options.check_used(["genrm:local:m", "genrm:vllm:m", "baseline:length"])
    assert options.named("genrm:vllm:m") == "genrm:vllm:m?dtype=float32"
    assert options.named("genrm:local:m") == "genrm:local:m"


def test_every_field_has_help_for_its_flag():
    from dataclasses import fields

    assert all(JudgeOptions.help(f.name) for f in fields(JudgeOptions))
