"""The ``quillrl`` command. Each verb lives in its own module and registers itself on ``app``
(defined in :mod:`._common`) when imported below."""

from __future__ import annotations

import logging
import os
import sys

import typer

from .. import cpu_threads
from ..errors import ConfigError
from ._common import app

__all__ = ["app", "main"]


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # quillrl never fetches from a hub: fail fast on a missing local file instead of retrying
    # network calls, and send no telemetry.
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        os.environ.setdefault(var, "1")
    logging.basicConfig(level=os.environ.get("QUILLRL_LOG", "WARNING"))
    # Before any verb loads torch: fewer threads that sleep while they wait when other work holds
    # our cores (docs/design.md, "A busy machine"); every JSON summary reports the choice.
    if any(arg in ("--help", "-h") for arg in sys.argv[1:]) or len(sys.argv) < 2:
        app()
        return
    try:
        cpu_threads.configure()
    except ConfigError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise SystemExit(2) from None
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
