"""vLLM engine options from a spec, a judge spec, a config and the CLI: parsed and checked in
the main venv, with no vLLM installed (tests/engines/test_vllm.py shows one reaching the engine)."""

from __future__ import annotations

import pytest

from quillrl.backends import make_backend
from quillrl.backends.vllm_options import VLLM_OPTIONS, parse_cli_pairs, split_vllm_spec
from quillrl.errors import ConfigError
from quillrl.judges import JudgeSpec, check_judge_spec


@pytest.mark.parametrize("query, expected", [
    ("dtype=float32&enforce_eager=1&max_model_len=4096",
     {"dtype": "float32", "enforce_eager": True, "max_model_len": 4096}),
    ("gpu_memory_utilization=0.5&enable_prefix_caching=off&kv_cache_gb=1.5",
     {"gpu_memory_utilization": 0.5, "enable_prefix_caching": False, "kv_cache_gb": 1.5}),
    ("max_num_seqs=8&tensor_parallel_size=2&max_logprobs=40&seed=3",
     {"max_num_seqs": 8, "tensor_parallel_size": 2, "max_logprobs": 40, "seed": 3}),
])
def test_spec_query_gives_typed_options(query, expected):
    assert split_vllm_spec(f"vllm:/models/m?{query}") == ("vllm:/models/m", expected)


@pytest.mark.parametrize("query, names", [
    ("dtyp=float32", ["unknown vLLM option 'dtyp'", "accepted: dtype"]),
    ("dtype=fp8", ["dtype must be one of auto, float32, bfloat16, float16", "'fp8'"]),
    ("enforce_eager=maybe", ["enforce_eager must be true or false"]),
    ("max_model_len=-1", ["max_model_len must be an integer >= 1"]),
    ("gpu_memory_utilization=1.5", ["gpu_memory_utilization must be a number in (0, 1]"]),
    ("kv_cache_gb=0", ["kv_cache_gb must be a positive number"]),
    ("dtype", ["KEY=VALUE"]),
])
def test_a_bad_spec_option_names_itself_and_what_is_accepted(query, names):
    with pytest.raises(ConfigError) as err:
        split_vllm_spec(f"vllm:m?{query}")
    for name in names:
        assert name in str(err.value)


def test_make_backend_checks_the_options_before_importing_vllm():
    with pytest.raises(ConfigError, match="unknown vLLM option 'eager'"):
        make_backend("vllm:smollm2-135m-instruct?eager=1")


def test_judge_spec_keeps_the_model_apart_from_the_options():
    spec = JudgeSpec.parse("genrm:vllm:smollm2-135m-instruct?dtype=float32&enforce_eager=1")
    assert (spec.backend_kind, spec.target) == ("vllm", "smollm2-135m-instruct")
    assert check_judge_spec(spec) is spec  # the model resolves; nothing is loaded
    with pytest.raises(ConfigError, match="unknown vLLM option 'dtype_'"):
        JudgeSpec.parse("genrm:vllm:smollm2-135m-instruct?dtype_=float32")


def test_a_config_sets_options_through_its_judge_spec():
    from quillrl.scoring.config import RewardSection

    section = RewardSection(judge="genrm:vllm:smollm2-135m-instruct?max_model_len=2048&dtype=float32")
    assert section.judge_spec.target == "smollm2-135m-instruct"
    with pytest.raises(Exception, match="max_model_len must be an integer >= 1"):
        RewardSection(judge="genrm:vllm:smollm2-135m-instruct?max_model_len=big")


def test_cli_pairs():
    assert parse_cli_pairs(["dtype=float32", "enforce_eager=true"]) == {"dtype": "float32",
                                                                         "enforce_eager": True}
    with pytest.raises(ConfigError, match="--vllm-option takes KEY=VALUE"):
        parse_cli_pairs(["float32"])
    with pytest.raises(ConfigError, match="unknown vLLM option 'foo'"):
        parse_cli_pairs(["foo=1"])
    assert set(VLLM_OPTIONS) >= {"dtype", "enforce_eager", "max_model_len", "gpu_memory_utilization",
                                 "kv_cache_gb", "enable_prefix_caching"}


def test_judge_options_refuse_vllm_options_without_a_vllm_judge():
    from quillrl.judges.options import JudgeOptions

    options = JudgeOptions.from_cli(mode="verdict", vllm_option=["dtype=float32"])
    options.check_used(["genrm:vllm:smollm2-135m-instruct"])
    assert options.vllm_options == {"dtype": "float32"}
    with pytest.raises(ConfigError, match="--vllm-option applies only to vLLM GenRM judges"):
        options.check_used(["baseline:length"])
    with pytest.raises(ConfigError, match="unknown vLLM option"):
        JudgeOptions.from_cli(mode="verdict", vllm_option=["nope=1"])
    assert options.build("baseline:length")


@pytest.mark.parametrize("argv, message", [
    (["judge", "--judge", "baseline:length", "--vllm-option", "dtype=float32"],
     "--vllm-option applies only to vLLM GenRM judges"),
    (["judge", "--judge", "genrm:vllm:smollm2-135m-instruct", "--vllm-option", "dtype=fp64"],
     "dtype must be one of"),
    (["generate", "--model", "smollm2-135m-instruct", "--vllm-option", "enforce_eager=1"],
     "--vllm-option applies only to --backend vllm"),
    (["generate", "--model", "smollm2-135m-instruct", "--backend", "vllm", "--vllm-option", "x=1"],
     "unknown vLLM option 'x'"),
    (["eval", "alignment", "--judge", "baseline:random", "--vllm-option", "seed=1"],
     "--vllm-option applies only to vLLM GenRM judges"),
])
def test_cli_refuses_bad_vllm_options_before_reading_files(argv, message, tmp_path):
    from typer.testing import CliRunner

    from quillrl.cli import app

    files = {"judge": ["--pairs", str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "o.jsonl")],
             "generate": ["--tasks", str(tmp_path / "t.jsonl"), "--out", str(tmp_path / "o.jsonl")],
             "eval": ["--pairs", str(tmp_path / "p.jsonl")]}[argv[0]]
    result = CliRunner().invoke(app, argv + files)
    assert result.exit_code != 0
    assert message in result.output, result.output


@pytest.mark.parametrize("flag, value", [("--device", "cpu"), ("--backend-batch-size", 4)])
def test_local_only_options_are_refused_for_a_vllm_judge(flag, value):
    from quillrl.judges.options import JudgeOptions

    options = JudgeOptions(**({"device": value} if flag == "--device" else {"backend_batch_size": value}))
    with pytest.raises(ConfigError, match=f"{flag} applies only to local GenRM judges"):
        options.check_used(["genrm:vllm:smollm2-135m-instruct"])


def test_cli_options_are_written_into_the_spec_that_names_the_judge():
    from quillrl.backends.vllm_options import with_vllm_options

    assert with_vllm_options("genrm:vllm:m", {"dtype": "float32"}) == "genrm:vllm:m?dtype=float32"
    assert with_vllm_options("genrm:vllm", {"seed": 2}) == "genrm:vllm?seed=2"
    assert with_vllm_options("genrm:local:m", {"dtype": "float32"}) == "genrm:local:m"
    assert with_vllm_options("genrm:vllm:m?seed=1", {}) == "genrm:vllm:m?seed=1"
    spec = with_vllm_options("genrm:vllm:smollm2-135m-instruct?seed=1", {"enforce_eager": False})
    assert JudgeSpec.parse(spec).target == "smollm2-135m-instruct"
    assert split_vllm_spec(JudgeSpec.parse(spec).backend)[1] == {"seed": 1, "enforce_eager": False}


@pytest.mark.parametrize("argv, message", [
    (["eval", "winrate", "--judge", "baseline:length", "--vllm-option", "dtype=float32"],
     "--vllm-option applies only to vLLM GenRM judges"),
    (["eval", "policy", "--base", "smollm2-135m-instruct", "--trained", "smollm2-135m-instruct",
      "--judge", "baseline:length", "--vllm-option", "dtype=float32"],
     "--vllm-option applies to vLLM engines"),
    (["eval", "policy", "--base", "smollm2-135m-instruct", "--trained", "smollm2-135m-instruct",
      "--judge", "baseline:length", "--backend", "vllm", "--vllm-option", "dtype=fp8"],
     "dtype must be one of"),
])
def test_eval_verbs_check_vllm_options(argv, message, tmp_path):
    from typer.testing import CliRunner

    from quillrl.cli import app

    files = (["--tasks", str(tmp_path / "t.jsonl"), "--a", str(tmp_path / "a.jsonl"), "--b",
              str(tmp_path / "b.jsonl")] if argv[1] == "winrate" else
             ["--tasks", str(tmp_path / "t.jsonl"), "--out-dir", str(tmp_path / "out")])
    result = CliRunner().invoke(app, argv + files)
    assert result.exit_code != 0 and message in result.output, result.output
