"""From the config sections to a ready scorer: the judge and the
:class:`~quillrl.scoring.group_rewards.GroupRewards` a ``reward:`` and a ``mix:`` section
describe. The trainer and the reward server both build theirs here, so both score alike."""

from __future__ import annotations

from ..judges import make_judge
from ..judges.free_text import make_free_text_verifier
from .config import MixSection, RewardSection
from .group_rewards import GroupRewards


def free_text_verifier(reward: RewardSection):
    """The configured verifier of ``free_text`` constraints, or None."""
    if reward.free_text_verifier is None:
        return None
    return make_free_text_verifier(reward.free_text_verifier, threshold=reward.free_text_threshold)


def judge_model_options(reward: RewardSection) -> dict:
    """The options a reward section passes to its judge's constructor."""
    if reward.judge_spec.kind != "genrm":
        return {}
    return {"max_new_tokens": reward.judge_max_new_tokens,
            **({"force_verdict": True} if reward.judge_force_verdict else {})}


def build_group_rewards(reward: RewardSection, mix: MixSection, seed: int, wrap_judge=None,
                        load_judge: bool = True):
    """The judge and :class:`~quillrl.scoring.group_rewards.GroupRewards` a config describes; the
    reward server (``serve-reward``) builds its own from the same sections, through this
    function, so both score alike. ``wrap_judge`` (e.g. the server's batcher) wraps the judge;
    ``load_judge=False`` leaves the judge to be set later (the trainer's shared-weights judge)."""
    judge = None
    if load_judge:
        judge = make_judge(reward.judge_spec, mode=reward.mode, swap=reward.swap, **judge_model_options(reward))
        if wrap_judge is not None:
            judge = wrap_judge(judge)
    return GroupRewards(judge, strategy=reward.strategy, seed=seed, mix=mix.model_dump(), loose=reward.loose,
                        rounds=reward.swiss_rounds,
                        free_text_verifier=free_text_verifier(reward))
