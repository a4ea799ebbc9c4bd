"""Where quillrl keeps its caches: ``$QUILLRL_HOME`` (default ``~/.cache/quillrl``)."""

from __future__ import annotations

import os
from pathlib import Path


def quillrl_home() -> Path:
    """The cache root; created on first use."""
    root = Path(os.environ.get("QUILLRL_HOME") or Path.home() / ".cache" / "quillrl").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root
