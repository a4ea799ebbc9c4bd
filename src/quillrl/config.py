"""Typed configs: YAML files and CLI overrides validated by the same pydantic classes.

Every stage's config is a :class:`StageConfig` subclass whose fields carry their help text.
``load_config(path, cls, overrides)`` reads YAML, applies ``--set key=value`` style overrides
(dotted keys reach nested sections), and turns validation failures into one
:class:`~quillrl.errors.ConfigError` that names the file, the key, what was wrong and what is
accepted, e.g. ``configs/demo.yaml: 'grpo.lerning_rate' is not a known key; did you mean
'learning_rate'? Accepted: ...``.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ConfigError

C = TypeVar("C", bound="StageConfig")


class StageConfig(BaseModel):
    """Base of every config section: unknown keys are errors, values are validated on load."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def _section_model(cls: type[BaseModel], dotted: tuple) -> type[BaseModel] | None:
    model: Any = cls
    for part in dotted:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return None
        model = field.annotation
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _explain(error: dict, cls: type[BaseModel], source: str) -> str:
    loc = tuple(str(x) for x in error["loc"])
    key = ".".join(loc)
    if error["type"] == "extra_forbidden":
        parent = _section_model(cls, tuple(loc[:-1])) or cls
        accepted = sorted(parent.model_fields)
        close = difflib.get_close_matches(loc[-1], accepted, n=1)
        hint = f" did you mean '{close[0]}'?" if close else ""
        return f"{source}: '{key}' is not a known key;{hint} accepted: {', '.join(accepted)}"
    model = _section_model(cls, tuple(loc[:-1])) or cls
    field = getattr(model, "model_fields", {}).get(loc[-1]) if loc else None
    helptext = f" ({field.description})" if field is not None and field.description else ""
    got = f"; got {error['input']!r}" if "input" in error and not isinstance(error["input"], dict) else ""
    return f"{source}: '{key}': {error['msg']}{got}{helptext}"


def validate_config(data: dict, cls: type[C], source: str = "config") -> C:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join(_explain(e, cls, source) for e in exc.errors())) from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"grpo.learning_rate=1e-5"`` -> (["grpo", "learning_rate"], 1e-5) with YAML typing."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value (dotted keys for sections)")
    key, raw = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw)


def apply_overrides(data: dict, overrides: list[str] | None) -> dict:
    for item in overrides or []:
        path, value = parse_override(item)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{part}' is not a section")
        node[path[-1]] = value
    return data


def load_config(path: str | Path | None, cls: type[C], overrides: list[str] | None = None) -> C:
    """Read a YAML config (or start from defaults when ``path`` is None) and validate it."""
    data: dict = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.exists():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
        data = loaded
    return validate_config(apply_overrides(data, overrides), cls, source)


def dump_config(config: BaseModel, path: str | Path) -> None:
    """Write the fully resolved config next to a run's outputs, for reproducibility."""
    Path(path).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
