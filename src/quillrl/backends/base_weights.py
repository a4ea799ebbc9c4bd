"""A judge on a trainee's own base weights: a PEFT model with its adapter disabled per call.

When the policy trains LoRA adapters on model M and its writing reward is a GenRM judge on the
same M (``configs/demo.yaml``), the judge needs no second copy of M: the adapter-free forward
pass of the policy *is* M, since LoRA leaves the base weights untouched. :class:`BaseWeightsBackend`
is a :class:`~quillrl.backends.local.LocalBackend` over the trainer's PEFT model that runs every
call inside ``model.disable_adapter()``, so the judge reads exactly what a separately loaded M
reads (the tests check p(A) to 1e-5) at half the resident weights (docs/results.md, "Judge
speed and memory").
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError
from .base import Generation, Prompt, SamplingParams
from .local import LocalBackend


class BaseWeightsBackend(LocalBackend):
    """``LocalBackend((peft_model, tokenizer))`` whose calls run with the adapter disabled."""

    name = "local"

    def __init__(self, peft_model: Any, tokenizer: Any, **options: Any):
        if not hasattr(peft_model, "disable_adapter"):
            raise ConfigError("BaseWeightsBackend needs a PEFT model (one with disable_adapter()); "
                              f"got {type(peft_model).__name__}")
        super().__init__((peft_model, tokenizer), **options)

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Generation]:
        with self._lock, self.model.disable_adapter():
            return super().generate(prompts, params)

    def choice_probs(self, prompts: Sequence[Prompt], choices: Sequence[str]) -> np.ndarray:
        with self._lock, self.model.disable_adapter():
            return super().choice_probs(prompts, choices)
