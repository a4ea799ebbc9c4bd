"""Engine-side tests: they run INSIDE an engine's venv (engines/build.sh builds them), e.g.

    PYTHONPATH=src $QUILLRL_ENGINES_HOME/verl/bin/python -m pytest tests/engines/test_verl.py

and tests/test_engines.py runs each of them from the main suite. The main venv never collects
this folder (tests/conftest.py's collect_ignore): these modules import the engines' packages.

slime is not on PyPI: its source, unpacked by `engines/build.sh slime` into
$QUILLRL_ENGINES_HOME/slime-624b824, goes on sys.path here so that `import slime` finds it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENGINES_HOME = Path(os.environ.get("QUILLRL_ENGINES_HOME")
                    or Path.home() / ".cache" / "quillrl" / "engines").expanduser()
SLIME_SRC = ENGINES_HOME / "slime-624b824"

if (SLIME_SRC / "slime").is_dir() and str(SLIME_SRC) not in sys.path:
    sys.path.insert(0, str(SLIME_SRC))
