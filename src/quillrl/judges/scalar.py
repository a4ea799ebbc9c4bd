"""A Bradley-Terry reward model as a pairwise judge: ``p(A ≻ B) = sigmoid(r_A - r_B)``.

Any local ``AutoModelForSequenceClassification`` directory with one output (``num_labels=1``)
works: the RLCS baseline we train with ``quillrl train bt-rm``, or one downloaded by hand. A
response is scored in the chat the policy saw, the prompt as the user turn and the response
as the assistant turn, rendered with the tokenizer's chat template
(:func:`format_for_rm`; plain ``prompt + "\\n\\n" + response`` when the tokenizer has none).
The BT trainer must format the same way, so it imports that function.

Both candidates of every pair of a ``compare_many`` call are scored in one batched pass
(chunks of ``batch_size``); identical (prompt, response) inputs are scored once. The score is
symmetric in the order, so there is nothing to swap.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError, ModelNotFoundError
from .base import Cost, Judge, Judgment, Pair, scored_judgment


def format_for_rm(tokenizer: Any, prompt: str, response: str) -> str:
    """The text a reward model scores for ``response`` to ``prompt``."""
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
        return tokenizer.apply_chat_template(messages, tokenize=False)
    return f"{prompt}\n\n{response}"


def rm_input_ids(tokenizer: Any, prompt: str, response: str,
                 max_length: int | None = None) -> tuple[list[int], bool]:
    """Token ids a reward model reads for ``response`` to ``prompt``, and whether it was cut.

    Longer than ``max_length`` tokens: the *response* is cut from the back (its opening kept),
    never the prompt or the template around it. Why the back: the prompt is what the response
    is judged against, the template's closing tokens are where the score is read (the last
    token), and a story cut at the front starts mid-scene while its opening is what sets it up.
    Training (``train bt-rm``) and judging (:class:`ScalarRMJudge`) both call this, so they read
    the same tokens.
    """
    def encode(text: str) -> list[int]:
        return tokenizer(format_for_rm(tokenizer, prompt, text), add_special_tokens=False)["input_ids"]

    ids = encode(response)
    if max_length is None or len(ids) <= max_length:
        return ids, False
    story = tokenizer(response, add_special_tokens=False)["input_ids"]
    keep = len(story) - (len(ids) - max_length)
    while keep > 0:
        ids = encode(tokenizer.decode(story[:keep]))
        if len(ids) <= max_length:
            return ids, True
        keep -= max(1, len(ids) - max_length)  # re-tokenising at the cut can add a token or two
    raise ConfigError(f"max_length={max_length} leaves no room for the response after the prompt "
                      f"and template ({len(encode(''))} tokens); raise it")


RM_SETTINGS = "quillrl_rm.json"


def write_rm_settings(model_dir: Path, *, max_length: int) -> None:
    """Record in a trained reward model's directory how its inputs were cut, for the judge."""
    (Path(model_dir) / RM_SETTINGS).write_text(json.dumps({"max_length": max_length}) + "\n")


def sigmoid(x: float) -> float:
    """Numerically safe logistic function.

    >>> sigmoid(0.0)
    0.5
    >>> round(sigmoid(2.0), 4)
    0.8808
    """
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


class ScalarRMJudge(Judge):
    """Pairwise judge from a scalar reward model; also scores single responses (:meth:`score`).

    ``model``/``tokenizer`` may be passed already loaded (e.g. straight after training) instead
    of ``path``. ``max_length`` cuts long responses as training did (:func:`rm_input_ids`).
    """

    def __init__(self, path: str | Path | None = None, *, model: Any = None, tokenizer: Any = None,
                 device: str | None = None, batch_size: int = 8, max_length: int | None = None):
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        if model is None or tokenizer is None:
            if path is None:
                raise ConfigError("ScalarRMJudge needs a model directory (path) or a loaded "
                                  "model and tokenizer")
            model, tokenizer = _load(Path(path), device)
            settings = Path(path) / RM_SETTINGS
            if max_length is None and settings.exists():  # cut long stories as training did
                max_length = json.loads(settings.read_text())["max_length"]
        if getattr(model.config, "num_labels", 1) != 1:
            raise ConfigError(f"a Bradley-Terry reward model has num_labels=1; "
                              f"{path or type(model).__name__} has {model.config.num_labels}")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        # Batched sequence classification reads the last non-pad token; without a pad id it
        # refuses batches larger than one.
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        self.model, self.tokenizer = model.eval(), tokenizer
        self.batch_size, self.max_length = batch_size, max_length
        self.name = f"scalar:{path}" if path is not None else "scalar"

    def score(self, prompts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """Reward ``r`` of each ``texts[i]`` as a response to ``prompts[i]``."""
        return self._score(prompts, texts)[0]

    def _score(self, prompts: Sequence[str], texts: Sequence[str]) -> tuple[np.ndarray, int, int]:
        """Rewards, the number of forward passes, and the number of tokens read."""
        import torch

        if len(prompts) != len(texts):
            raise ValueError(f"{len(prompts)} prompts for {len(texts)} texts")
        inputs = [rm_input_ids(self.tokenizer, p, t, self.max_length)[0] for p, t in zip(prompts, texts)]
        rewards, passes, tokens = np.zeros(len(inputs)), 0, 0
        device = next(self.model.parameters()).device
        for lo in range(0, len(inputs), self.batch_size):
            batch = self.tokenizer.pad({"input_ids": inputs[lo: lo + self.batch_size]},
                                       return_tensors="pt").to(device)
            with torch.inference_mode():
                logits = self.model(**batch).logits
            rewards[lo: lo + len(logits)] = logits[:, 0].float().cpu().numpy()
            passes += 1
            tokens += int(batch["attention_mask"].sum())
        return rewards, passes, tokens

    def _compare_many(self, pairs: list[Pair]) -> list[Judgment]:
        index: dict[tuple[str, str], int] = {}
        for prompt, a, b in pairs:
            for text in (a, b):
                index.setdefault((prompt, text), len(index))
        start = time.perf_counter()
        keys = list(index)
        rewards, passes, tokens = self._score([k[0] for k in keys], [k[1] for k in keys])
        # Rewards come from shared batches: each pair carries an even share of their cost.
        n = len(pairs)
        cost = Cost(prompt_tokens=round(tokens / n), seconds=(time.perf_counter() - start) / n,
                    backend_calls=passes / n)
        out = []
        for prompt, a, b in pairs:
            r_a, r_b = float(rewards[index[(prompt, a)]]), float(rewards[index[(prompt, b)]])
            out.append(scored_judgment(sigmoid(r_a - r_b), raw=f"r_A={r_a!r} r_B={r_b!r}",
                                       cost=cost, extra={"r_a": r_a, "r_b": r_b}))
        return out

    def close(self) -> None:
        self.model = None


def _load(path: Path, device: str | None):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if not (path / "config.json").exists():
        raise ModelNotFoundError(f"no reward model at {path}: expected a local Hugging Face "
                                 "directory with config.json (a num_labels=1 sequence classifier)")
    model = AutoModelForSequenceClassification.from_pretrained(str(path), dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if device:
        model.to(device)
    return model, tokenizer
