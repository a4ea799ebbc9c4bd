"""Backend specs (``make_backend``): what they build, and errors that list what is accepted."""

from __future__ import annotations

import pytest

from quillrl.backends import Backend, SamplingParams, make_backend
from quillrl.backends.openai_compat import OpenAIBackend
from quillrl.errors import ConfigError


@pytest.mark.parametrize("spec, fragment", [
    ("gpt4", "accepted forms: local, local:<model name or directory>, openai:"),
    ("", "unknown backend spec"),
    ("openai:", "base URL"),
    ("openai:127.0.0.1:8000/v1#m", "base URL"),
    ("remote:http://x/v1", "vllm:<model name or directory>"),
])
def test_bad_specs_list_the_accepted_forms(spec, fragment):
    with pytest.raises(ConfigError, match="spec") as info:
        make_backend(spec)
    assert fragment in str(info.value)


def test_openai_specs_split_url_and_model():
    with make_backend("openai:http://127.0.0.1:8000/v1#org/judge-7b", attempts=2) as b:
        assert isinstance(b, OpenAIBackend)
        assert (b.base_url, b.model, b.attempts) == ("http://127.0.0.1:8000/v1", "org/judge-7b", 2)
        assert "org/judge-7b" in repr(b)
    with make_backend("openai:https://api.example.com/v1/") as b:
        assert (b.base_url, b.model) == ("https://api.example.com/v1", None)


def test_bad_options_name_what_is_accepted():
    with pytest.raises(ConfigError, match="accepts.*max_concurrency"):
        make_backend("openai:http://127.0.0.1:8000/v1#m", batch_size=4)
    with pytest.raises(ConfigError, match="max_concurrency must be >= 1"):
        make_backend("openai:http://127.0.0.1:8000/v1#m", max_concurrency=0)


def test_local_specs(tiny_model_dir):
    b = make_backend(f"local:{tiny_model_dir}", batch_size=3)
    assert b.batch_size == 3 and b.model_name == str(tiny_model_dir)
    assert make_backend(b) is b  # a built backend passes through
    assert isinstance(b, Backend)
    with pytest.raises(ConfigError, match="accepts"):
        make_backend(f"local:{tiny_model_dir}", max_concurrency=2)


def test_missing_local_model_says_how_to_get_one(tmp_path):
    with pytest.raises(Exception, match="never downloads"):
        make_backend(f"local:{tmp_path / 'nope'}")


def test_openai_backend_refuses_bad_params_before_any_request():
    with make_backend("openai:http://127.0.0.1:9/v1#m", attempts=1) as b:
        with pytest.raises(ConfigError, match="top_p"):
            b.generate(["x"], SamplingParams(top_p=0))
        with pytest.raises(ConfigError, match="choice"):
            b.choice_probs(["x"], [""])
        assert b.usage.calls == 0


@pytest.mark.parametrize("spec, fields", [
    ("local", ("local", "", "", {})),
    (" local:smollm2-135m-instruct ", ("local", "smollm2-135m-instruct", "", {})),
    ("vllm?seed=2", ("vllm", "", "", {"seed": 2})),
    ("vllm:/m?dtype=float32", ("vllm", "/m", "", {"dtype": "float32"})),
    ("openai:http://h:1/v1?timeout=5&attempts=2#org/m;api_key_env=K",
     ("openai", "org/m", "http://h:1/v1", {"api_key_env": "K", "timeout": 5.0, "attempts": 2})),
])
def test_a_backend_spec_is_parsed_once_into_its_fields(spec, fields):
    from quillrl.backends import BackendSpec

    parsed = BackendSpec.parse(spec)
    assert (parsed.kind, parsed.model, parsed.url, dict(parsed.options)) == fields
    assert BackendSpec.parse(parsed) is parsed


def test_a_judge_spec_reads_its_backend_through_the_same_parser():
    from quillrl.judges import JudgeSpec

    judge = JudgeSpec.parse("genrm:vllm?seed=2")
    assert (judge.backend_kind, judge.target, dict(judge.backend_spec.options)) == ("vllm", "", {"seed": 2})
    with pytest.raises(ConfigError, match="unknown backend spec 'gpt4'"):
        JudgeSpec.parse("genrm:gpt4")
