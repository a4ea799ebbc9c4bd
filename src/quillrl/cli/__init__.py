"""The ``quillrl`` command. Each verb lives in its own module and registers itself on ``app``
(defined in :mod:`._common`) when imported below."""

from __future__ import annotations

import logging
import os

from ._common import app

__all__ = ["app", "main"]


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # quillrl never fetches from a hub: fail fast on a missing local file instead of retrying
    # network calls, and send no telemetry.
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        os.environ.setdefault(var, "1")
    logging.basicConfig(level=os.environ.get("QUILLRL_LOG", "WARNING"))
    app()


from . import data  # noqa: E402,F401
from . import verify  # noqa: E402,F401
from . import serve  # noqa: E402,F401
from . import serve_reward  # noqa: E402,F401
from . import train  # noqa: E402,F401
from . import distill  # noqa: E402,F401
from . import judge  # noqa: E402,F401
from . import eval  # noqa: E402,F401
from . import eval_ifeval  # noqa: E402,F401
from . import eval_policy  # noqa: E402,F401
from . import generate  # noqa: E402,F401
