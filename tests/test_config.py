"""Typed configs: errors name the file, the key and what is accepted."""

from __future__ import annotations

import pytest
from pydantic import Field

from quillrl.config import StageConfig, apply_overrides, dump_config, load_config
from quillrl.errors import ConfigError


class Inner(StageConfig):
    learning_rate: float = Field(1e-5, gt=0, description="optimizer step size")
    loss_type: str = "dapo"


class Outer(StageConfig):
    model: str = "smollm2-135m-instruct"
    grpo: Inner = Inner()


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_and_values(tmp_path):
    cfg = load_config(write(tmp_path, "grpo:\n  learning_rate: 0.001\n"), Outer)
    assert cfg.grpo.learning_rate == 0.001 and cfg.model == "smollm2-135m-instruct"
    assert load_config(None, Outer).grpo.loss_type == "dapo"


def test_unknown_nested_key_suggests_the_right_one(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "grpo:\n  lerning_rate: 0.1\n"), Outer)
    msg = str(err.value)
    assert "c.yaml" in msg and "'grpo.lerning_rate'" in msg and "did you mean 'learning_rate'" in msg
    assert "loss_type" in msg  # the accepted keys are listed


def test_bad_value_names_key_and_help(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "grpo:\n  learning_rate: -1\n"), Outer)
    assert "'grpo.learning_rate'" in str(err.value) and "optimizer step size" in str(err.value)


@pytest.mark.parametrize("text", ["- a\n- b\n", "a: [1,\n"])
def test_bad_yaml_shapes(tmp_path, text):
    with pytest.raises(ConfigError, match="c.yaml"):
        load_config(write(tmp_path, text), Outer)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml", Outer)


def test_overrides_are_typed_and_dotted(tmp_path):
    cfg = load_config(None, Outer, ["grpo.learning_rate=2e-4", "model=other"])
    assert cfg.grpo.learning_rate == 2e-4 and cfg.model == "other"
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["novalue"])


def test_dump_round_trips(tmp_path):
    cfg = load_config(None, Outer, ["grpo.loss_type=grpo"])
    dump_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml", Outer) == cfg
