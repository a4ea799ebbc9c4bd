"""Where a verb may write: an output path checked before any work (docs/design.md,
"Reliability"). Every verb calls :func:`check_output_path` on every file or directory it writes,
so every verb refuses the same things the same way."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from ..errors import ConfigError


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_path(path: Path | str | None, *, option: str = "--out",
                      inputs: Iterable[Path | str | None] = (), directory: bool = False,
                      ) -> Path | None:
    """Refuse, before any work, an output the verb could not write or must not write.

    ``path`` is what the user gave for ``option``: a file (``directory=False``) or a directory
    to create or reuse (``directory=True``). Refused with a :class:`~quillrl.errors.ConfigError`
    (exit 2 from the CLI): a file path that is an existing directory; a directory path that is
    an existing file; a path under an existing file (its folder cannot be made); and a path that
    is one of ``inputs`` (the command would overwrite or append to what it reads). None passes
    through (the option was not given).

    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> check_output_path(d, option="--out")
    Traceback (most recent call last):
    quillrl.errors.ConfigError: --out ...: is a directory; give a file path
    """
    if path is None:
        return None
    path = Path(path)
    if directory:
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{option} {path}: is a file, not a directory; give a directory path")
    elif path.is_dir():
        raise ConfigError(f"{option} {path}: is a directory; give a file path")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{option} {path}: {parent} is a file, so no folder can be "
                                  "made there")
            break
    for source in inputs:
        if source is not None and (_same_file(path, Path(source))
                                   or path.resolve() == Path(source).resolve()):
            raise ConfigError(f"{option} {path} is also an input of this command; writing it "
                              "would destroy what is read: give another path")
    return path
