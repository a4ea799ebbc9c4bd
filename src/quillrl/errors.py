"""One shallow family of user-facing errors.

Every error a user can fix (a bad file, a bad config value, a missing model) is a
``QuillError``; the CLI prints its message and exits with status 2 instead of a traceback.
"""

from __future__ import annotations


class QuillError(Exception):
    """Base class of every error quillrl raises on purpose."""


class ConfigError(QuillError, ValueError):
    """A config file or option has a bad key or value; the message says what to change."""


class DataError(QuillError, ValueError):
    """A data file has a bad line; the message names the file, the line and the field."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None):
        where = ":".join(str(x) for x in (path, line) if x is not None)
        prefix = f"{where}: " if where else ""
        suffix = f" (field '{field}')" if field else ""
        super().__init__(f"{prefix}{message}{suffix}")
        self.path, self.line, self.field = path, line, field


class ConstraintError(QuillError, ValueError):
    """An unknown constraint id or wrong kwargs; the message lists what is accepted."""


class ModelNotFoundError(QuillError, FileNotFoundError):
    """A model name or path that cannot be loaded; the message says how to get it."""


class BackendError(QuillError, RuntimeError):
    """An inference backend failed in a way retries did not fix."""
