"""Style: the markdown counts of Arena-Hard, and group-relative length and style-density penalties.

A reward model that likes long or heavily formatted answers teaches a policy to pad and to
decorate. Two remedies share the counts defined here, once:

- in evaluation, the style-controlled win rate (``eval/winrate.py``) uses the counts of both
  sides of a pair as covariates of a Bradley–Terry fit (Arena-Hard's style control);
- in the reward, :func:`style_penalties` lowers the writing reward of a group member that is
  longer, or denser in markdown, than its group, before RLMR sizes its constraint penalty
  (``mix.length_penalty``, ``mix.style_penalty``; docs/design.md, "Style control").

The counts follow Arena-Hard's ``count_markdown_elements``: fenced code blocks are removed
first; headers are lines starting with 1–6 ``#`` and a space; list items are lines starting
with ``-``, ``*`` or ``+`` and a space, or with digits, a dot and a space; bold spans are
``**…**`` or ``__…__`` on one line. Length is the whitespace word count (Arena-Hard counts
tokens; words need no tokenizer and rank texts the same way up to a near-constant factor).
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["StyleCounts", "STYLE_FEATURES", "word_count", "markdown_counts", "style_counts",
           "style_density", "style_penalties", "style_penalties_groups"]

STYLE_FEATURES = ("words", "headers", "lists", "bold")

_CODE = re.compile(r"```[^`]*```")
_HEADER = re.compile(r"^#{1,6}\s", re.MULTILINE)
_ORDERED = re.compile(r"^\s*\d+\.\s", re.MULTILINE)
_UNORDERED = re.compile(r"^\s*[-*+]\s", re.MULTILINE)
_BOLD = (re.compile(r"\*\*[^*\n]+\*\*"), re.compile(r"__[^_\n]+__"))


class StyleCounts(NamedTuple):
    """The four style features of one text, in the order of :data:`STYLE_FEATURES`."""

    words: int
    headers: int
    lists: int
    bold: int


def word_count(text: str) -> int:
    """Whitespace-separated words (the length every length control here uses).

    >>> word_count("  Once upon\\na time. ")
    4
    """
    return len(text.split())


def markdown_counts(text: str) -> tuple[int, int, int]:
    """``(headers, list items, bold spans)`` of ``text``, Arena-Hard's markdown counts.

    >>> markdown_counts("# Title\\n\\n- one\\n- **two**\\n1. three\\n```\\n# not a header\\n```")
    (1, 3, 1)
    """
    text = _CODE.sub("", text)
    headers = len(_HEADER.findall(text))
    lists = len(_ORDERED.findall(text)) + len(_UNORDERED.findall(text))
    bold = sum(len(p.findall(text)) for p in _BOLD)
    return headers, lists, bold


def style_counts(text: str) -> StyleCounts:
    """:class:`StyleCounts` of ``text``: words, then the markdown counts.

    >>> tuple(style_counts("## Plan\\n* a **b** c"))
    (6, 1, 1, 1)
    """
    return StyleCounts(word_count(text), *markdown_counts(text))


def style_density(text: str) -> float:
    """Markdown elements (headers + list items + bold spans) per word; 0 for an empty text.

    >>> style_density("## Plan\\n* a **b** c")
    0.5
    """
    c = style_counts(text)
    return (c.headers + c.lists + c.bold) / c.words if c.words else 0.0


def _relative(x: np.ndarray) -> np.ndarray:
    """``(x_i − mean(x)) / max(x)``: 0 for a flat group or an all-zero one, else in (−1, 1)."""
    top = float(x.max()) if x.size else 0.0
    if top <= 0 or float(x.min()) == top:
        return np.zeros_like(x)  # exactly 0, not the rounding of x − mean(x)
    return (x - x.mean()) / top


def style_penalties(lengths: ArrayLike, densities: ArrayLike | None = None, length_penalty: float = 0.0,
                    style_penalty: float = 0.0) -> np.ndarray:
    """Group-relative penalties ``d_i`` for one group; the reward is then ``w_i − d_i``.

    With ``ℓ`` the members' word counts and ``ρ`` their style densities (:func:`style_density`)::

        d_i = α·(ℓ_i − mean ℓ)/max ℓ + β·(ρ_i − mean ρ)/max ρ

    (a term is 0 when its maximum is 0). ``α = length_penalty``, ``β = style_penalty``, both
    ``≥ 0`` and in the writing reward's units (a pairwise reward lies in [−1, 1]; Nemotron's
    settings are of the order α = 0.3, β = 0.05). Each term is centred, so the penalties sum to
    0 over the group: they move reward from the longer (denser) members to the shorter
    (plainer) ones without changing the group mean, and they are bounded by α + β, so a member
    cannot gain more than that by being short. A member as long as the group mean is not moved.
    The penalised writing reward is mixed like any other (:func:`~quillrl.rewards.mix_rewards`),
    so RLMR's λ is sized on it and every violator still gets a negative advantage.

    >>> style_penalties([10, 20, 30], length_penalty=0.3).round(3).tolist()
    [-0.1, 0.0, 0.1]
    >>> style_penalties([10, 10], [0.0, 0.2], style_penalty=0.05).round(3).tolist()
    [-0.025, 0.025]
    """
    alpha, beta = float(length_penalty), float(style_penalty)
    if not (np.isfinite(alpha) and alpha >= 0 and np.isfinite(beta) and beta >= 0):
        raise ValueError(f"length_penalty={alpha} and style_penalty={beta} must be finite and >= 0")
    ell = np.asarray(lengths, dtype=np.float64)
    if ell.ndim != 1 or np.any(~np.isfinite(ell)) or np.any(ell < 0):
        raise ValueError(f"lengths must be one group's non-negative word counts, got {lengths!r}")
    d = alpha * _relative(ell) if alpha else np.zeros_like(ell)
    if beta:
        if densities is None:
            raise ValueError("style_penalty > 0 needs the members' style densities")
        rho = np.asarray(densities, dtype=np.float64)
        if rho.shape != ell.shape or np.any(~np.isfinite(rho)) or np.any(rho < 0):
            raise ValueError(f"densities must be {ell.size} non-negative numbers, got {densities!r}")
        d = d + beta * _relative(rho)
    return d


def style_penalties_groups(texts: list[str], group_size: int, length_penalty: float = 0.0,
                           style_penalty: float = 0.0) -> np.ndarray:
    """:func:`style_penalties` for each run of ``group_size`` consecutive ``texts`` (flat,
    group-major, as a GRPO batch is), from their word counts and style densities.

    >>> style_penalties_groups(["a b", "a b c d", "x", "x"], 2, length_penalty=0.4).round(3).tolist()
    [-0.1, 0.1, 0.0, 0.0]
    """
    if group_size < 1 or len(texts) % group_size:
        raise ValueError(f"{len(texts)} texts do not form whole groups of {group_size}")
    out = np.zeros(len(texts))
    if not (length_penalty or style_penalty):
        return out
    lengths = np.array([word_count(t) for t in texts], dtype=np.float64)
    dens = np.array([style_density(t) for t in texts]) if style_penalty else None
    for s in range(0, len(texts), group_size):
        out[s:s + group_size] = style_penalties(
            lengths[s:s + group_size], None if dens is None else dens[s:s + group_size],
            length_penalty, style_penalty)
    return out
