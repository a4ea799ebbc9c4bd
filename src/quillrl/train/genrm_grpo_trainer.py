"""GenRM GRPO with RLCS's entropy-based reward shaping (RLCS stage 2).

The policy is the judge: each prompt is a labelled pair in the GenRM template (A/B order drawn
per pair, seeded) ending in the reasoning prefill as a final assistant message, each completion
a sampled continuation of it, read as prefill + completion. Its reward (docs/design.md, "Entropy-based
reward shaping"), per sample, is :func:`~quillrl.rewards.shape_by_entropy` of

* correctness: the verdict :func:`~quillrl.judges.parse_judgment` reads, against the letter
  of the human-preferred side; an unparseable judgment is invalid (format penalty);
* H: the entropy of the policy's *own* verdict distribution for that sample, ``p(A)`` read at
  the verdict position (prompt + completion up to and including ``<verdict>``) and renormalised
  over {A, B}, exactly as :class:`~quillrl.judges.GenRMJudge` reads it in reasoning mode.

How we get H: one extra batched, no-grad forward pass of the current policy over every valid
sample of the local batch (:meth:`GenRMGRPOTrainer.verdict_probs`, through
:class:`~quillrl.backends.local.LocalBackend`, the code path evaluation uses). We re-score
rather than read the sampled token's logprob because the letter we need is at a *text*
position: BPE can merge ``>`` and ``A`` into one sampled token, and re-tokenising the prefix
puts the model exactly where the judge is read at evaluation time.

With vLLM generation (``trl: {use_vllm: true}``) the forward pass stays as is and is still
correct. The alternative is to ask vLLM for top-k logprobs (``SamplingParams(logprobs=k)``) and
read ``A``/``B`` at the token after ``<verdict>``; we do not, because a confident verdict's
top-k often lacks the losing letter (then p(B), and H, are unknown), the sampled token can
straddle the letter, and vLLM's weights lag the policy by up to one sync; the extra pass costs
one forward over the batch, small next to generation.

How this departs from plain TRL GRPO: nothing but the reward. It is a TRL-signature reward
function (:class:`EntropyShapedVerdictReward`), per sample (no group logic, so no gathering);
the subclass only hands it the current policy, the narrowest hook there is.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from trl import GRPOTrainer

from ..backends.base import ChatPrompt
from ..judges.genrm import NO_VERDICT_MASS, verdict_probe
from ..judges.stats import verdict_of
from ..judges.template import VERDICT_CHOICES, from_conversation
from ..rewards import shape_by_entropy
from ..rewards.verdict import verdict_distribution
from ..scoring.reward_funcs import completion_text

VerdictProbs = Callable[[list[ChatPrompt]], np.ndarray]


def read_judgment(prompt: Any, completion: str,
                  force: bool = False) -> tuple[ChatPrompt | None, str | None, str | None, bool]:
    """``(probe, verdict, error, forced)`` for one sampled judgment, read exactly as
    :class:`~quillrl.judges.GenRMJudge` reads one (:func:`~quillrl.judges.genrm.verdict_probe`):
    the prompt's final assistant message is the reasoning prefill the completion continues;
    the probe (None if invalid) is where ``p(A)`` is read. With ``force``, an analysis that
    never reached its verdict is closed there (``forced``; its verdict is then read from p(A))."""
    if isinstance(prompt, str):  # a plain-text dataset: the whole prompt is one user turn
        prompt = [{"role": "user", "content": prompt}]
    parsed, probe = verdict_probe(from_conversation(prompt), completion, force=force)
    return probe, parsed.verdict, parsed.error, parsed.forced


class EntropyShapedVerdictReward:
    """TRL reward function: ``shape_by_entropy(correct, H, floor, format_penalty)`` per judgment.

    ``verdict_probs(probes) -> (n, 2)`` gives the raw P(A), P(B) at each probe's end (the
    trainer passes its current policy's). The dataset needs a ``label`` column ("A" or "B").
    Per-sample values go to TRL's ``log_metric`` so they average over every process:
    ``accuracy`` and ``invalid_rate`` (over all samples), ``entropy_correct``/``entropy_wrong``
    (mean H over right/wrong valid samples) and ``confident_correct_share`` (right with
    ``H < confident_below``); per group (one pair's samples) ``entropy_spread`` (std of H),
    ``group_reward_std`` and ``group_reward_std_unshaped`` (the same samples at ``floor = 1``),
    and ``reward_unshaped`` per sample.

    ``force_verdict`` closes a sampled analysis that never reached its verdict and scores the
    verdict read there, less ``forced_penalty`` (``forced_rate`` is logged): with a judge too
    small to finish, every sample would otherwise be invalid, every group's reward the same,
    and no update, shaped or not, would move it.

    >>> reward = EntropyShapedVerdictReward(lambda probes: np.array([[0.8, 0.2]] * len(probes)))
    >>> ok = "<analysis>\\nfine\\n</analysis>\\n<verdict>A</verdict>"
    >>> [round(r, 3) for r in reward([[{"role": "user", "content": "x"}]] * 3, [ok, ok, "junk"],
    ...                              label=["A", "B", "A"])]
    [0.778, -0.422, -1.5]
    >>> forcing = EntropyShapedVerdictReward(lambda probes: np.array([[0.8, 0.2]] * len(probes)),
    ...                                      force_verdict=True, forced_penalty=0.25)
    >>> [round(r, 3) for r in forcing([[{"role": "user", "content": "x"}]] * 2,
    ...                               [ok, "<analysis>\\nCoherence: A is"], label=["A", "A"])]
    [0.778, 0.528]
    """

    __name__ = "shaped"

    def __init__(self, verdict_probs: VerdictProbs, floor: float = 0.2, format_penalty: float = 0.5,
                 confident_below: float = 0.5, keep_samples: int = 0, force_verdict: bool = False,
                 forced_penalty: float = 0.25):
        # fail fast on bad values
        shape_by_entropy([], [], floor=floor, format_penalty=format_penalty, forced_penalty=forced_penalty)
        self.verdict_probs, self.floor, self.format_penalty = verdict_probs, floor, format_penalty
        self.force_verdict, self.forced_penalty = bool(force_verdict), float(forced_penalty)
        self.confident_below, self.keep_samples = confident_below, keep_samples
        self.samples: list[dict] = []

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], label: Sequence[str],
                 log_metric: Callable[[str, float], None] | None = None, pair_id: Sequence[str] | None = None,
                 **_: Any) -> list[float]:
        texts = [completion_text(c) for c in completions]
        checked = [read_judgment(p, t, force=self.force_verdict) for p, t in zip(prompts, texts)]
        probes, verdicts, errors, forced = ([c[k] for c in checked] for k in range(4))
        valid = [i for i, probe in enumerate(probes) if probe is not None]
        probs = np.asarray(self.verdict_probs([probes[i] for i in valid]), dtype=float).reshape(len(valid), 2)
        entropy: list[float | None] = [None] * len(texts)
        correct: list[bool | None] = [None] * len(texts)
        for i, row in zip(valid, probs):
            dist = verdict_distribution(row[0], row[1])
            if dist is None:  # no mass on either letter: GenRMJudge calls this invalid too
                errors[i], forced[i] = NO_VERDICT_MASS, False
                continue
            # a forced verdict was not written: it is the judge's more likely letter there
            verdicts[i] = verdicts[i] if verdicts[i] is not None else verdict_of(dist.p_a)
            entropy[i], correct[i] = dist.entropy, verdicts[i] == label[i]
        forced = [bool(f) and ok is not None for f, ok in zip(forced, correct)]
        rewards = self._shape(correct, entropy, forced, self.floor)
        if log_metric is not None:
            self._log(log_metric, correct, entropy, forced)
            self._log_groups(log_metric, correct, entropy, forced, rewards,
                             pair_id or [repr(p) for p in prompts])
        for i in range(min(self.keep_samples - len(self.samples), len(texts))):
            self.samples.append({"pair_id": pair_id[i] if pair_id else None, "label": label[i],
                                 "completion": texts[i], "verdict": verdicts[i], "entropy": entropy[i],
                                 "correct": correct[i], "forced": forced[i], "error": errors[i],
                                 "reward": float(rewards[i])})
        return rewards.tolist()

    def _shape(self, correct: list, entropy: list, forced: list, floor: float) -> np.ndarray:
        return shape_by_entropy(correct, entropy, floor=floor, format_penalty=self.format_penalty,
                                forced=forced, forced_penalty=self.forced_penalty)

    def _log(self, log_metric: Callable[[str, float], None], correct: list, entropy: list,
             forced: list) -> None:
        # one value per sample: TRL sums and counts them over all processes, so each logged
        # number is a mean over the whole gathered batch, not a mean of per-process means
        for ok, h, f in zip(correct, entropy, forced):
            log_metric("accuracy", float(ok is True))
            log_metric("invalid_rate", float(ok is None))
            log_metric("forced_rate", float(f))
            log_metric("confident_correct_share", float(ok is True and h < self.confident_below))
            if ok is not None:
                log_metric("entropy_correct" if ok else "entropy_wrong", h)

    def _log_groups(self, log_metric: Callable[[str, float], None], correct: list, entropy: list,
                    forced: list, rewards: np.ndarray, keys: Sequence[str]) -> None:
        """Per group (the samples of one pair): the spread of H, through which alone shaping can
        act (docs/design.md), and the reward's std shaped and unshaped (``floor = 1``) on the
        same samples. Groups are read from the local batch: a group split over processes
        (TRL allows it) is counted as its parts."""
        unshaped = self._shape(correct, entropy, forced, 1.0)
        groups: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(key, []).append(i)
        for idx in groups.values():
            hs = [entropy[i] for i in idx if entropy[i] is not None]
            log_metric("entropy_spread", float(np.std(hs)) if len(hs) > 1 else 0.0)
            log_metric("group_reward_std", float(np.std(rewards[idx])))
            log_metric("group_reward_std_unshaped", float(np.std(unshaped[idx])))
        for value in unshaped:
            log_metric("reward_unshaped", float(value))

    def take_samples(self) -> list[dict]:
        rows, self.samples = self.samples, []
        return rows


class GenRMGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` whose one reward is :class:`EntropyShapedVerdictReward` on its own policy.

    ``shaping``: ``floor``, ``format_penalty``, ``confident_below``, ``force_verdict``,
    ``forced_penalty`` (see the reward); the
    dataset needs conversational ``prompt`` and ``label`` columns (``pair_id`` optional).
    """

    def __init__(self, *args: Any, shaping: dict, samples_per_step: int = 4, **kwargs: Any):
        self.shaped_reward = EntropyShapedVerdictReward(self.verdict_probs, keep_samples=samples_per_step,
                                                        **shaping)
        kwargs["reward_funcs"] = [self.shaped_reward]
        super().__init__(*args, **kwargs)

    def _tokenize_prompts(self, prompts: list):
        """Token ids of each judge prompt exactly as the judge reads it: TRL 1.16 renders a
        conversational prompt with ``add_generation_prompt=True``, which would close the final
        assistant message (the reasoning prefill) and open a new turn. We encode it as every
        backend does (``prompts.encode`` of the :class:`ChatPrompt`: template, then the prefill
        to continue), so the policy continues the prefill from the judge's own tokens."""
        if not (prompts and isinstance(prompts[0], list)):
            return super()._tokenize_prompts(prompts)
        from ..backends.prompts import encode

        return [encode(self.processing_class, from_conversation(p)) for p in prompts], None, {}

    def verdict_probs(self, probes: list[ChatPrompt]) -> np.ndarray:
        """Raw P(A), P(B) after each probe from the current policy: one no-grad forward pass.

        Always exactly one pass, even with nothing to score (then over a throwaway probe):
        under FSDP or ZeRO-3 a forward is a collective every process must join.
        """
        from ..backends.local import LocalBackend

        batch = list(probes) or [ChatPrompt.user("-", assistant_prefix="<verdict>")]
        backend = LocalBackend((self.model, self.processing_class), batch_size=len(batch))
        probs = backend.choice_probs(batch, VERDICT_CHOICES)
        return probs[: len(probes)]

    def take_samples(self) -> list[dict]:
        return self.shaped_reward.take_samples()


# TRL log key -> quillrl metric name (written to metrics.jsonl)
METRIC_NAMES = {
    "reward": "shaped_reward_mean",
    "rewards/shaped/std": "shaped_reward_std",
    "completions/mean_length": "completion_length_mean",
}
