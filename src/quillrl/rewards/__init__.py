"""The papers' reward math as small pure functions: NumPy in, NumPy out, nothing of TRL or torch.

- :mod:`.mixing`: RLMR's dynamic mixed reward of writing quality and constraint checks, per group.
- :mod:`.pairwise`: RLCS's pairwise judge preferences folded into one reward per completion.
- :mod:`.style`: Arena-Hard's markdown counts and group-relative length/style penalties.
- :mod:`.order`: a group's rule-fixed order (pivot, neighbours, who is shown first), from its texts.
- :mod:`.shaping`: RLCS's entropy-based reward shaping for training the judge with GRPO.
- :mod:`.verdict`: a verdict's probability, entropy and swap debiasing, shared by every judge.

``train/`` wires these into trainers; everything here works on plain arrays of one group (or of
consecutive whole groups), so it can be tested, and reused, on its own.
"""

from __future__ import annotations

from .mixing import (ALL_VIOLATE, MIX_METHODS, RLMRStats, fill_missing_writing, mix_groups, mix_rewards,
                     rlmr_lambda)
from .order import fixed_order, member_key
from .pairwise import (ADAPTIVE, STRATEGIES, BTFit, bradley_terry, choose_pivot, comparisons_needed, pairwise_rewards,
                       preference_matrix, swiss_pairs, swiss_rounds)
from .shaping import shape_by_entropy
from .style import (STYLE_FEATURES, StyleCounts, markdown_counts, style_counts, style_density, style_penalties,
                    style_penalties_groups, word_count)
from .verdict import binary_entropy, swap_debias, verdict_distribution

__all__ = [
    "mix_rewards", "mix_groups", "rlmr_lambda", "fill_missing_writing", "RLMRStats", "MIX_METHODS", "ALL_VIOLATE",
    "pairwise_rewards", "comparisons_needed", "preference_matrix", "choose_pivot", "STRATEGIES",
    "ADAPTIVE", "BTFit", "bradley_terry", "swiss_pairs", "swiss_rounds",
    "style_penalties", "style_penalties_groups", "style_counts", "style_density", "markdown_counts",
    "word_count", "StyleCounts", "STYLE_FEATURES",
    "fixed_order", "member_key",
    "shape_by_entropy", "binary_entropy", "swap_debias", "verdict_distribution",
]
