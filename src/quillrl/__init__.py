"""quillrl: train language models that write well and follow instructions, by RL.

Two published methods as one toolkit: RLCS (a generative pairwise reward model for stories,
trained by distillation, SFT and entropy-shaped GRPO) and RLMR (GRPO with a dynamic mixed
reward of writing quality and verified constraints). The heavy parts (torch, transformers,
lm-eval) load only when first used, so ``import quillrl`` is cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .errors import BackendError, ConfigError, ConstraintError, DataError, ModelNotFoundError, QuillError

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_LAZY = {
    "verify": "quillrl.constraints",
    "Constraint": "quillrl.constraints",
    "mix_rewards": "quillrl.rewards",
    "pairwise_rewards": "quillrl.rewards",
    "shape_by_entropy": "quillrl.rewards",
    "GenRMJudge": "quillrl.judges",
    "parse_judgment": "quillrl.judges",
    "load_model": "quillrl.models",
}

__all__ = [
    "__version__",
    "QuillError", "ConfigError", "DataError", "ConstraintError", "ModelNotFoundError", "BackendError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = import_module(_LAZY[name])
        return getattr(module, "load" if name == "load_model" else name)
    raise AttributeError(f"module 'quillrl' has no attribute {name!r}")
