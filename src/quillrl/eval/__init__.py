"""Evaluation: how well judges agree with people, and how well policies write.

``alignment`` holds the pure agreement metrics (accuracy with a bootstrap interval, invalid
rate, calibration); ``judging`` runs a judge over labelled pairs; ``injection`` measures
prompt-injection robustness. Policy evaluation: ``constraint_rates`` (pass rates per id and
family), ``winrate`` (win rate, LC win rate, paired difference), ``hacking`` (length and
repetition signals), ``headtohead`` (pairing two responses files), ``policy_report``. The CLI's
``quillrl eval`` commands are built on these.
"""

from .alignment import (
    accuracy,
    alignment_summary,
    bootstrap_ci,
    expected_calibration_error,
    invalid_rate,
    pair_scores,
    reliability_bins,
)

__all__ = [
    "accuracy",
    "alignment_summary",
    "bootstrap_ci",
    "expected_calibration_error",
    "invalid_rate",
    "pair_scores",
    "reliability_bins",
]
