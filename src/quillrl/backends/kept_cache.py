"""KV caches a local generation keeps for the ``choice_probs`` calls that follow it.

A reasoning judge's verdict probe is its judge prompt, its own chain and ``<verdict>``: the
long prompt and the chain were just run by ``generate``. Inside
:meth:`~quillrl.backends.local.LocalBackend.reusing_generation_cache`, the backend keeps each
generated row's KV cache here (pads cut off, whole batches up to a byte budget), and
``choice_probs`` runs only a probe's tokens after its longest kept prefix. Prefixes are matched
token by token from the first, so a kept prefix is the same tokens at the same positions, and
the probabilities are those of a full pass, to float rounding (docs/design.md, "Judge speed
and memory").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# a 135M model in float32 holds 46 KB a token: 16 reasoning rows of 1,500 tokens are about
# 1.1 GB. A batch's cache is live during its generation anyway; the budget bounds what several
# batches keep.
GENERATION_CACHE_BYTES = 4 << 30


@dataclass
class KeptRow:
    """One generated row's tokens (prompt and completion, without the last sampled token,
    which was never fed back) and its per-layer key/value views, pads cut off."""

    tokens: list[int]
    layers: list[tuple[Any, Any]]


@dataclass
class KeptCaches:
    """The rows kept in one ``reusing_generation_cache`` scope, at most ``max_bytes`` of KV."""

    max_bytes: int
    rows: list[KeptRow] = field(default_factory=list)
    nbytes: int = 0

    def add_batch(self, cache: Any, rows: list[list[int]], new: Any, width: int) -> None:
        """Keep a generated batch's cache (``model.generate``'s ``past_key_values`` for
        left-padded ``rows`` of ``width`` columns and ``new`` generated tokens), one view per
        row, if it is plain full-attention layers (a sliding-window or quantised cache is not
        reused) and fits the budget."""
        from transformers.cache_utils import DynamicLayer

        layers = list(getattr(cache, "layers", None) or [])
        if not layers or any(type(layer) is not DynamicLayer for layer in layers):
            return
        nbytes = sum(2 * layer.keys.numel() * layer.keys.element_size() for layer in layers)
        if self.nbytes + nbytes > self.max_bytes:
            return
        self.nbytes += nbytes
        fed = layers[0].keys.shape[-2] - width  # generated tokens whose KV exists
        for r, row in enumerate(rows):
            pad = width - len(row)
            self.rows.append(KeptRow(
                tokens=row + new[r, :fed].tolist(),
                layers=[(layer.keys[r:r + 1, :, pad:], layer.values[r:r + 1, :, pad:]) for layer in layers]))

    def longest_prefix(self, row: list[int]) -> tuple[KeptRow | None, int]:
        """The kept row sharing the most leading tokens with ``row``, and how many (at most
        ``len(row) - 1``: the last token must run to give its logits)."""
        best, best_n = None, 0
        for kept in self.rows:
            n = common_prefix_len([row, kept.tokens])
            if n > best_n:
                best, best_n = kept, n
        return best, min(best_n, len(row) - 1)

    def cache_for(self, kept: KeptRow, n: int) -> Any:
        """A fresh ``DynamicCache`` holding ``kept``'s first ``n`` positions (the views are not
        written to: the suffix pass concatenates onto new tensors)."""
        from transformers import DynamicCache

        return DynamicCache([(k[:, :, :n], v[:, :, :n]) for k, v in kept.layers])


def common_prefix_len(rows: list[list[int]]) -> int:
    """Number of leading tokens every row shares.

    >>> common_prefix_len([[1, 2, 3], [1, 2, 4, 5], [1, 2]])
    2
    """
    first, n = rows[0], min(map(len, rows))
    for j in range(n):
        if any(r[j] != first[j] for r in rows[1:]):
            return j
    return n
