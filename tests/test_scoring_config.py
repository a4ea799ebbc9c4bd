"""The reward section's judge spec is parsed once, when the config loads, into a JudgeSpec."""

from __future__ import annotations

import pytest

from quillrl.errors import ConfigError
from quillrl.judges import JudgeSpec, make_judge
from quillrl.scoring.config import RewardSection


@pytest.mark.parametrize("spec, fields", [
    ("genrm:local:smollm2-135m-instruct", ("genrm", "local", "smollm2-135m-instruct", 0)),
    ("genrm:local", ("genrm", "local", "", 0)),
    ("genrm:openai:http://h:1/v1?timeout=5#m", ("genrm", "openai", "http://h:1/v1?timeout=5#m", 0)),
    ("scalar:runs/rm", ("scalar", "", "runs/rm", 0)),
    ("baseline:length", ("baseline", "", "length", 0)),
    ("baseline:random:3", ("baseline", "", "random", 3)),
])
def test_judge_specs_parse_into_their_fields(spec, fields):
    parsed = JudgeSpec.parse(spec)
    assert (parsed.kind, parsed.backend_kind, parsed.target, parsed.seed) == fields
    assert str(parsed) == spec and JudgeSpec.parse(parsed) is parsed


@pytest.mark.parametrize("spec, why", [
    ("genrm", "needs a backend spec"), ("scalar:", "needs a model directory"),
    ("baseline:length:2", "unknown baseline"), ("baseline:random:x", "must be an integer"),
    ("gpt4", "unknown judge kind"),
])
def test_a_bad_reward_judge_fails_when_the_config_loads(spec, why):
    with pytest.raises(ConfigError, match=why):
        JudgeSpec.parse(spec)
    with pytest.raises(ValueError, match=f"{why}.*Accepted forms"):
        RewardSection(judge=spec)


def test_make_judge_takes_a_string_or_a_parsed_spec():
    section = RewardSection(judge="baseline:random:5")
    assert section.judge == "baseline:random:5"  # the YAML form is kept for config.yaml
    by_spec, by_text = make_judge(section.judge_spec), make_judge("baseline:random:5")
    assert by_spec.compare("p", "a", "b").p_a == by_text.compare("p", "a", "b").p_a


def test_the_strategy_field_is_typed_by_writing_strategies_itself():
    """One list: the config's choices (schema, CLI help, errors) are WRITING_STRATEGIES."""
    from quillrl.rewards import STRATEGIES
    from quillrl.scoring.config import WRITING_STRATEGIES
    from quillrl.scoring.group_rewards import WRITING_STRATEGIES as used_by_group_rewards

    assert used_by_group_rewards is WRITING_STRATEGIES == (*STRATEGIES, "scalar")
    assert RewardSection.model_json_schema()["properties"]["strategy"]["enum"] == list(WRITING_STRATEGIES)
    for strategy in WRITING_STRATEGIES:
        assert RewardSection(strategy=strategy).strategy == strategy
    with pytest.raises(ValueError, match="'circular', 'swiss' or 'scalar'"):
        RewardSection(strategy="elo")
