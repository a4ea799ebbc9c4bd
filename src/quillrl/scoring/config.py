"""The config sections every scorer of groups shares: where the writing reward comes from
(``reward:``) and how it is mixed with constraint passes (``mix:``). ``train policy`` and
``serve-reward`` embed the very same sections, so a YAML block moves between them unchanged."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..config import StageConfig
from ..judges.spec import JudgeSpec
from ..rewards.pairwise import STRATEGIES

# How a group's writing rewards are made: a pairwise-to-scalar strategy
# (quillrl.rewards.STRATEGIES), or "scalar", a judge that scores each completion alone.
WRITING_STRATEGIES = (*STRATEGIES, "scalar")


class RewardSection(StageConfig):
    """Where the writing-quality reward comes from."""

    judge: str = Field("genrm:local:smollm2-135m-instruct",
                       description="judge spec: genrm:<backend>, scalar:<path>, baseline:length|random")
    mode: Literal["reasoning", "verdict"] = Field("verdict", description="GenRM mode; verdict = one forward pass")
    swap: bool = Field(True, description="judge both presentation orders and average (position debiasing)")
    strategy: Literal[WRITING_STRATEGIES] = Field(  # the schema and CLI help list them
        "pivot", description="pairwise-to-scalar strategy (scalar: a judge with score(), e.g. scalar:<path>; "
        "circular: n comparisons on a ring; swiss: Swiss rounds fitted by Bradley–Terry)")
    swiss_rounds: int | None = Field(None, ge=1, description="strategy swiss: rounds per group "
                                     "(floor(n/2) comparisons each); default ceil(log2 n)")
    judge_max_new_tokens: int = Field(384, ge=1, description="GenRM reasoning length (reasoning mode only)")
    judge_force_verdict: bool = Field(False, description="GenRM reasoning mode: close an analysis that "
                                      "never reached its verdict and read the verdict there "
                                      "(docs/design.md, 'Forced verdict')")
    loose: bool = Field(False, description="verify constraints with IFEval's loose variants")
    free_text_verifier: str | None = Field(
        None, description="backend that judges free_text constraints (local:<model>, "
        "openai:<url>#<model>); required when a task has one")
    free_text_threshold: float = Field(0.5, ge=0, le=1, description="p(yes) at or above which "
                                       "a free_text constraint passes")
    share_policy_weights: bool = Field(True, description="a genrm:local judge on the policy's own model "
                                       "judges with the policy's base weights (adapter disabled) "
                                       "instead of loading a second copy")

    @field_validator("judge")
    @classmethod
    def _judge_parses(cls, judge: str) -> str:
        JudgeSpec.parse(judge)  # a malformed spec fails when the config loads, with the forms
        return judge

    @property
    def judge_spec(self) -> JudgeSpec:
        """``judge``, parsed (validated when the config loaded)."""
        return JudgeSpec.parse(self.judge)

    @model_validator(mode="after")
    def _forcing_needs_reasoning(self) -> "RewardSection":
        if self.judge_force_verdict and self.mode != "reasoning":
            raise ValueError("judge_force_verdict closes an unfinished analysis, so it needs "
                             f"mode: reasoning (verdict mode writes none), got mode: {self.mode}")
        return self


class MixSection(StageConfig):
    """How writing rewards and constraint passes combine (per group)."""

    method: Literal["rlmr", "writing_only", "constraint_only", "linear"] = Field(
        "rlmr", description="RLMR dynamic mix, or a baseline")
    margin: float = Field(0.5, ge=0, description="RLMR margin in units of the group's writing-reward std")
    all_violate: Literal["zero", "writing"] = Field("zero", description="reward when every sample violates")
    weight: float = Field(1.0, description="constraint weight for method=linear")
    singleton_penalty: float = Field(1.0, gt=0, description="rlmr, a group of one (validation with "
                                     "n=1): r = w - singleton_penalty for a violator")
    length_penalty: float = Field(0.0, ge=0, description="group-relative length penalty α: w_i -= "
                                  "α·(words_i - mean)/max, before the mix sizes RLMR's λ (0 = off; "
                                  "docs/design.md, 'Style control')")
    style_penalty: float = Field(0.0, ge=0, description="group-relative style-density penalty β "
                                 "(markdown headers + list items + bold per word), like length_penalty")
