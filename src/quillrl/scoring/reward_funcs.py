"""Per-sample rewards with TRL's signature, usable directly in ``GRPOTrainer(reward_funcs=...)``.

TRL calls a reward function as ``f(prompts=..., completions=..., completion_ids=..., **columns)``
where ``columns`` are the dataset's other columns, one value per completion, and expects one
float (or ``None``) per completion. These are the per-sample parts of quillrl's rewards; the
group-level parts (pairwise judging, RLMR mixing) need whole groups and live in
:class:`~quillrl.scoring.group_rewards.GroupRewards` (which the trainer, the reward server and
the engine adapters all call).

A dataset for these functions carries a ``constraints`` column (a JSON string of
``[{"id", "kwargs"}]``; see :func:`~quillrl.scoring.group_rewards.task_constraints`).
"""

from __future__ import annotations

from typing import Any, Sequence

from .group_rewards import task_constraints


def completion_text(completion: Any) -> str:
    """The text of a completion, plain (``str``) or conversational (a list of messages)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    return str(completion)


def prompt_text(prompt: Any) -> str:
    """The writing prompt: the last user message of a conversational prompt, or the string."""
    if isinstance(prompt, str):
        return prompt
    users = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
    return str(users[-1]) if users else ""


class ConstraintPassReward:
    """``1.0`` if a completion passes every constraint of its task, else ``0.0``.

    An undecided check (a ``free_text`` constraint whose verifier gave no answer, or with no
    verifier configured) is not a pass: the sample gets ``0.0``, exactly as in ``train policy``
    (docs/design.md, "Undecided constraints"). Returning None would drop the sample from this
    reward, so a policy could escape the constraint term by provoking undecided verdicts.

    >>> import json
    >>> reward = ConstraintPassReward()
    >>> spec = json.dumps([{"id": "creative:forbid_words", "kwargs": {"words": ["moon"]}}])
    >>> reward(prompts=["p", "p"], completions=["The sun.", "The moon."], constraints=[spec, spec])
    [1.0, 0.0]
    """

    __name__ = "constraint_pass"

    def __init__(self, loose: bool = False, free_text_verifier: Any = None):
        self.loose, self.free_text_verifier = loose, free_text_verifier

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any],
                 constraints: Sequence[Any] | None = None, **_: Any) -> list[float | None]:
        from ..constraints import verify

        constraints = constraints if constraints is not None else [None] * len(completions)
        out: list[float | None] = []
        for prompt, completion, spec in zip(prompts, completions, constraints):
            result = verify(completion_text(completion), task_constraints(spec), loose=self.loose,
                            prompt=prompt_text(prompt), free_text_verifier=self.free_text_verifier)
            out.append(float(result.passed))  # undecided counts as not passed
        return out


class ScalarRMReward:
    """The score of a Bradley-Terry reward model (``quillrl train bt-rm`` output or any local
    sequence-classification model) for each completion."""

    __name__ = "scalar_rm"

    def __init__(self, path: str):
        from ..judges import make_judge

        self.judge = make_judge(f"scalar:{path}")

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **_: Any) -> list[float | None]:
        scores = self.judge.score([prompt_text(p) for p in prompts], [completion_text(c) for c in completions])
        return [None if s is None else float(s) for s in scores]
