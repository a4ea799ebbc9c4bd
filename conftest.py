"""The main venv's collection (``testpaths`` includes ``src/quillrl`` for doctests) leaves out the
modules that import an engine installed only in that engine's venv; tests/engines/ runs them there."""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("nemo_gym") else ["src/quillrl/integrations/nemo_gym.py"]
