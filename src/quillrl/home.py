"""Where quillrl keeps its caches (``$QUILLRL_HOME``, default ``~/.cache/quillrl``) and where it
finds the shared public data (``--data-root``, ``$QUILLRL_DATA``, else ``../shared/data``)."""

from __future__ import annotations

import os
from pathlib import Path


def quillrl_home() -> Path:
    """The cache root; created on first use."""
    root = Path(os.environ.get("QUILLRL_HOME") or Path.home() / ".cache" / "quillrl").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def resolve_data_root(data_root: str | Path | None = None) -> Path:
    """Where the shared data lives: the argument, else ``$QUILLRL_DATA``, else ``../shared/data``
    relative to the current directory, else relative to the repository.

    An explicit root (argument or variable) that does not exist is an error, never a silent
    fall-back to another directory.
    """
    from .errors import DataError

    explicit = data_root if data_root is not None else os.environ.get("QUILLRL_DATA")
    if explicit:
        root = Path(explicit).expanduser()
        if not root.is_dir():
            source = "--data-root" if data_root is not None else "$QUILLRL_DATA"
            raise DataError(f"data root {root} (from {source}) is not a directory")
        return root
    candidates = [Path.cwd().parent / "shared" / "data", Path(__file__).resolve().parents[3].parent / "shared" / "data"]
    for root in candidates:
        if root.is_dir():
            return root
    raise DataError("shared data not found (looked in "
                    + ", ".join(str(c) for c in candidates)
                    + "); pass --data-root DIR or set $QUILLRL_DATA")
