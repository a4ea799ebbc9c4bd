"""vLLM engine options as a spec, a config and the CLI write them, checked without vLLM.

One grammar everywhere: a query after the model in a backend spec,
``vllm:<model>?dtype=float32&enforce_eager=1&max_model_len=4096`` (so
``genrm:vllm:<model>?...`` in a judge spec and in a config's ``reward.judge``), and
``--vllm-option KEY=VALUE`` on the CLI, which reads the same table. Keys and values are
checked here, before vLLM is imported or a model loaded; an unknown key or a bad value is a
ConfigError that names it and lists what is accepted (docs/design.md, "The vLLM backend").

>>> split_vllm_spec("vllm:/m?dtype=float32&enforce_eager=1")
('vllm:/m', {'dtype': 'float32', 'enforce_eager': True})
>>> parse_vllm_options({"max_model_len": "0"}, "spec 's'")
Traceback (most recent call last):
quillrl.errors.ConfigError: spec 's': vLLM option max_model_len must be an integer >= 1, got '0'
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from ..errors import ConfigError

DTYPES = ("auto", "float32", "bfloat16", "float16")
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE + FALSE:
        return text in TRUE
    raise ValueError("must be true or false (1/0, yes/no, on/off)")


def _int(low: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        try:
            number = int(str(value).strip()) if not isinstance(value, bool) else None
        except ValueError:
            number = None
        if number is None or number < low:
            raise ValueError(f"must be an integer >= {low}")
        return number
    return parse


def _fraction(value: Any) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        number = float("nan")
    if not 0 < number <= 1:
        raise ValueError("must be a number in (0, 1]")
    return number


def _positive(value: Any) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        number = float("nan")
    if not number > 0:
        raise ValueError("must be a positive number")
    return number


def _dtype(value: Any) -> str:
    text = str(value).strip()
    if text not in DTYPES:
        raise ValueError(f"must be one of {', '.join(DTYPES)}")
    return text


# key -> (parser, help). Every key but kv_cache_gb is a vllm.LLM argument of the same name.
VLLM_OPTIONS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "dtype": (_dtype, "weights and activations (vLLM's CPU default is bfloat16; float32 "
                      "matches the local backend)"),
    "enforce_eager": (_bool, "skip torch.compile/CUDA graphs: start in seconds, not minutes"),
    "max_model_len": (_int(1), "context length (prompt + completion) in tokens"),
    "gpu_memory_utilization": (_fraction, "GPU memory share for weights and KV cache"),
    "kv_cache_gb": (_positive, "KV cache size in GiB (vLLM's kv_cache_memory_bytes; on a CPU, "
                               "VLLM_CPU_KVCACHE_SPACE)"),
    "enable_prefix_caching": (_bool, "reuse the KV cache of a shared prompt prefix"),
    "max_num_seqs": (_int(1), "sequences per engine step"),
    "tensor_parallel_size": (_int(1), "GPUs the model is split over"),
    "max_logprobs": (_int(1), "top log-probabilities a request may ask for (default 20)"),
    "seed": (_int(0), "engine seed"),
}


def accepted() -> str:
    return "; ".join(f"{k} ({help_})" for k, (_, help_) in VLLM_OPTIONS.items())


def parse_vllm_options(options: Mapping[str, Any] | Iterable[tuple[str, Any]], where: str) -> dict[str, Any]:
    """Typed options from ``{key: text}`` (or pairs); ``where`` names the source in errors."""
    items = options.items() if isinstance(options, Mapping) else options
    out: dict[str, Any] = {}
    for key, value in items:
        key = str(key).strip()
        if key not in VLLM_OPTIONS:
            raise ConfigError(f"{where}: unknown vLLM option {key!r}; accepted: {accepted()}")
        try:
            out[key] = VLLM_OPTIONS[key][0](value)
        except ValueError as exc:
            raise ConfigError(f"{where}: vLLM option {key} {exc}, got {str(value)!r}") from None
    return out


def parse_cli_pairs(pairs: Iterable[str], flag: str = "--vllm-option") -> dict[str, Any]:
    """``["dtype=float32", "enforce_eager=1"]`` from a repeated CLI flag, typed and checked.

    >>> parse_cli_pairs(["dtype=float32", "max_model_len=2048"])
    {'dtype': 'float32', 'max_model_len': 2048}
    """
    items = []
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"{flag} takes KEY=VALUE, got {pair!r}; keys: {', '.join(VLLM_OPTIONS)}")
        items.append((key, value))
    return parse_vllm_options(items, flag)


def split_vllm_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``vllm:<model>?k=v&...`` -> (``vllm:<model>``, typed options); no query: no options."""
    from urllib.parse import parse_qsl

    head, question, query = spec.partition("?")
    if not question:
        return spec, {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise ConfigError(f"backend spec {spec!r}: the options after '?' must be KEY=VALUE "
                          f"joined by '&'; accepted keys: {', '.join(VLLM_OPTIONS)}") from None
    return head, parse_vllm_options(pairs, f"backend spec {spec!r}")


def engine_arguments(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """``vllm.LLM`` keyword arguments and environment variables for parsed options: ``kv_cache_gb``
    is ``kv_cache_memory_bytes`` on a GPU and ``VLLM_CPU_KVCACHE_SPACE`` (whole GiB, which is
    what vLLM's CPU worker reads) on a CPU, where vLLM sizes the cache from that variable."""
    llm = dict(options)
    env: dict[str, str] = {}
    gb = llm.pop("kv_cache_gb", None)
    if gb is not None:
        if _vllm_on_cpu():
            env["VLLM_CPU_KVCACHE_SPACE"] = str(max(1, round(gb)))
        else:
            llm["kv_cache_memory_bytes"] = int(gb * 2**30)
    return llm, env


def _vllm_on_cpu() -> bool:
    try:
        from vllm.platforms import current_platform
    except ImportError:
        return False
    return bool(current_platform.is_cpu())


def with_vllm_options(spec: str, options: Mapping[str, Any]) -> str:
    """``spec`` (``vllm:...`` or ``genrm:vllm:...``) with ``options`` written into its query
    (they win over the spec's own), so the spec that names a judge in its output says how its
    engine ran. Other specs, or no options: ``spec`` unchanged.

    >>> with_vllm_options("genrm:vllm:m?dtype=bfloat16&seed=1", {"dtype": "float32", "enforce_eager": True})
    'genrm:vllm:m?dtype=float32&seed=1&enforce_eager=true'
    """
    from urllib.parse import parse_qsl, urlencode

    backend = spec[len("genrm:"):] if spec.startswith("genrm:") else spec
    if not options or not (backend == "vllm" or backend.startswith(("vllm:", "vllm?"))):
        return spec
    head, _, query = spec.partition("?")
    merged = dict(parse_qsl(query, keep_blank_values=True))
    merged.update({k: _text(v) for k, v in options.items()})
    return f"{head}?{urlencode(merged)}"


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
