"""One resumable JSONL output file: what every long-running verb writes and a rerun continues.

``generate``, ``judge``, ``distill`` (its ledger, its output and its teacher's response cache,
``quillrl.backends.cache.ResponseCache``), ``eval winrate --judgments`` and ``eval policy`` write
their records through :class:`ResumableJsonl`, so they resume by one rule (docs/design.md, "Resumable
outputs"):

* **Settings.** Every line carries the run's settings (the model and its sampling settings, or the
  judge, its mode, swap, template and order seed); a rerun with other settings is refused, naming
  the setting, the file's value and this run's. A verb whose lines do not carry them keeps them in
  a sidecar meta file (``meta=``), checked the same way.
* **Inputs.** Every line also carries ``inputs``, a short digest of each text that shaped it (the
  task's prompt; the prompt and the two texts a judge compared). On resume, a key whose inputs
  differ from this run's is refused, naming the key and which inputs changed: a rerun over
  changed inputs is never answered from stale records (swapping ``--a`` and ``--b`` must not reuse
  the old verdicts).
* **Done keys.** ``records`` maps each key (``key(record)``, e.g. the id, or ``(id, sample)``) to
  its record; ``todo()`` gives what is left.
* **Appends.** Each record is one line written with one ``write`` and flushed, so Ctrl-C or
  SIGKILL leaves every earlier line whole. A last line cut mid-write is dropped on resume, but
  only once every whole line has been read as ours: a file that is not ours (another verb's, or
  not JSONL) is refused untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError
from .jsonl import append_whole_line, to_json_dict

INPUTS_KEY = "inputs"


def digest(text: str) -> str:
    """A short, stable digest of a text (16 hex digits of SHA-256).

    >>> len(digest("Write about the sea.")), digest("a") == digest("a") != digest("b")
    (16, True)
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def input_digests(texts: Mapping[str, str]) -> dict[str, str]:
    """``{name: digest(text)}`` for the texts that shape a record.

    >>> input_digests({"prompt": "p"}) == {"prompt": digest("p")}
    True
    """
    return {name: digest(text) for name, text in texts.items()}


class ResumableJsonl:
    """A JSONL output that a rerun of the same command continues (see the module docstring).

    ``settings``: what every line must carry, equal, for the file to be resumed (``defaults``
    gives the value of a setting added later, for lines written before it existed).
    ``key``: a record's key (its done-key). ``required``: fields every line of ours has; a line
    without them makes the file foreign. ``meta``: a sidecar JSON file holding the settings
    instead of the lines. ``restart``: start the file afresh. ``command`` and ``option`` name
    the verb and its output option in refusals, ``noun`` what the file is ("response cache").

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "out.jsonl"
    >>> with ResumableJsonl(p, settings={"judge": "j"}) as out:
    ...     _ = out.write({"id": "a", "judge": "j"}, inputs={"prompt": "x"})
    >>> with ResumableJsonl(p, settings={"judge": "j"}) as out:
    ...     sorted(out.records), out.todo([("a", {"prompt": "x"}), ("b", {})])
    (['a'], ['b'])
    """

    def __init__(self, path: str | Path, *, settings: Mapping[str, Any],
                 key: Callable[[dict], Hashable] = lambda r: str(r["id"]),
                 required: Iterable[str] = ("id",), defaults: Mapping[str, Any] | None = None,
                 meta: str | Path | None = None, restart: bool = False,
                 command: str = "quillrl", option: str = "--out",
                 hint: str = "use another {option}, or rerun with the file's settings",
                 meta_names: str = "settings", noun: str = "file"):
        self.path = Path(path)
        self.settings = dict(settings)
        self.key = key
        self.required = tuple(required)
        self.defaults = dict(defaults or {})
        self.meta = None if meta is None else Path(meta)
        self.command, self.option = command, option
        self.hint = hint.format(option=option)
        self.meta_names, self.noun = meta_names, noun
        self.records: dict[Hashable, dict] = {}
        self.truncated_lines = 0
        self.written = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if restart or not self.path.exists():
            self._check_meta(new=True, restart=restart)
            self._fh = self.path.open("wb", buffering=0)
        else:
            self._check_meta(new=False)
            cut = self._scan()  # raises, leaving the file untouched, unless every line is ours
            self._repair(cut)
            self._fh = self.path.open("ab", buffering=0)
        self._size = self._fh.seek(0, os.SEEK_END)  # bytes of whole lines written so far

    # -- opening --------------------------------------------------------------------------------

    def _scan(self) -> int | None:
        """Read every whole line as ours (settings checked); the offset a cut last line starts at,
        or None. Nothing is written here, so a refusal leaves the file as it was."""
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        whole, tail = data[:end], data[end:]
        for number, raw in enumerate(whole.split(b"\n")[:-1] if whole else [], start=1):
            if raw.strip():
                self._take(self._parse(raw, number), number)
        if not tail.strip():
            return None
        number = whole.count(b"\n") + 1
        try:
            value = json.loads(tail.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            # half a line of ours starts as our lines do; anything else is someone else's file
            if not tail.startswith(b'{"'):
                raise self._foreign(number, "its last line is not a JSON object") from None
            return end
        self._take(self._check_ours(value, number), number)  # whole, only the newline missing
        return -1

    def _parse(self, raw: bytes, number: int) -> dict:
        try:
            value = json.loads(raw.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise self._foreign(number, "not a JSON line") from None
        return self._check_ours(value, number)

    def _check_ours(self, value: Any, number: int) -> dict:
        if not isinstance(value, dict) or any(value.get(f) is None for f in self.required):
            raise self._foreign(number, f"needs {', '.join(map(repr, self.required))}")
        if self.meta is None:
            for name, wanted in self.settings.items():
                theirs = value.get(name, self.defaults.get(name))
                if theirs != wanted:
                    raise ConfigError(f"{self.path}:{number}: this {self.noun} was written with "
                                      f"{name}={theirs!r}, this run asks for {name}={wanted!r}; "
                                      f"{self.hint}")
        return value

    def _take(self, value: dict, number: int) -> None:
        self.records[self.key(value)] = value

    def _foreign(self, number: int, why: str) -> DataError:
        return DataError(f"not a `{self.command}` output ({why}); it was left untouched: write "
                         f"to a new {self.option} file", path=str(self.path), line=number)

    def _repair(self, cut: int | None) -> None:
        if cut is None:
            return
        with self.path.open("r+b") as fh:
            if cut == -1:  # a whole record that only lacks its newline: end the line
                fh.seek(0, 2)
                fh.write(b"\n")
            else:
                fh.truncate(cut)
                self.truncated_lines = 1

    def _check_meta(self, *, new: bool, restart: bool = False) -> None:
        if self.meta is None:
            return
        if new or restart:
            self.meta.parent.mkdir(parents=True, exist_ok=True)
            self.meta.write_text(json.dumps(self.settings, indent=1) + "\n")
            return
        if not self.meta.exists():
            raise ConfigError(f"{self.path} exists without {self.meta.name}, so the "
                              f"{self.meta_names} that wrote it are unknown; resuming could mix "
                              f"two runs. Use another {self.option}")
        try:
            old = json.loads(self.meta.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"not valid JSON ({exc.msg})", path=str(self.meta)) from None
        diff = [f"{k}: {old.get(k, self.defaults.get(k))!r} there, {v!r} now"
                for k, v in self.settings.items() if old.get(k, self.defaults.get(k)) != v]
        if diff:
            raise ConfigError(f"{self.path} was written with other settings ({'; '.join(diff)}); "
                              f"its records would be mixed with this run's. {self.hint}")

    # -- resuming -------------------------------------------------------------------------------

    def todo(self, items: Iterable[tuple[Hashable, Mapping[str, str]]],
             labels: Mapping[str, str] | None = None) -> list[Hashable]:
        """The keys of ``items`` (``(key, texts that shape its record)``) not yet done, in order.

        A done key whose record was shaped by other texts is refused with a ConfigError naming
        the key and what changed (``labels`` gives each text's name in the message)."""
        left, stale = [], []
        for key, texts in items:
            record = self.records.get(key)
            if record is None:
                left.append(key)
                continue
            changed = self.changed(record, texts)
            if changed:
                stale.append((key, changed))
        if stale:
            key, changed = stale[0]
            names = " and ".join((labels or {}).get(c, c) for c in changed)
            more = f" (and {len(stale) - 1} more)" if len(stale) > 1 else ""
            raise ConfigError(f"{self.path}: {key!r}{more} was made from another {names} than "
                              f"this run's; its record would answer for inputs it never saw. "
                              f"Write to another {self.option}")
        return left

    @staticmethod
    def changed(record: Mapping[str, Any], texts: Mapping[str, str]) -> list[str]:
        """The names of ``texts`` whose digest differs from the record's (all of them for a
        record written before inputs were recorded)."""
        theirs = record.get(INPUTS_KEY) or {}
        ours = input_digests(texts)
        return [name for name, d in ours.items() if theirs.get(name) != d]

    # -- writing --------------------------------------------------------------------------------

    def write(self, record: Any, inputs: Mapping[str, str] | None = None) -> dict:
        """Append one record (with ``inputs``' digests) as one flushed line; returns the dict."""
        data = dict(to_json_dict(record))
        if inputs is not None:
            data[INPUTS_KEY] = input_digests(inputs)
        self._append((json.dumps(data, ensure_ascii=False) + "\n").encode("utf-8"))
        self.records[self.key(data)] = data
        self.written += 1
        return data

    def _append(self, line: bytes) -> None:
        """One whole line, unbuffered, so it survives an interrupt; a full disk leaves the file
        valid up to its last whole line (:func:`~quillrl.data.jsonl.append_whole_line`)."""
        self._size = append_whole_line(self._fh, line, self._size)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> ResumableJsonl:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
