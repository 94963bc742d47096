"""One score calibration for every detector, so that scores compare and rank across rules
and models (docs/design.md: finding row).

- A rule that is certain — the amount is provably wrong: recomputed exactly, written twice,
  not allowed in the run — scores `CERTAIN` (1.0).
- A statistical detector has a raw unusualness (robust z, anomaly score, a ratio to the
  usual amount, a share of base salary) and an explicit threshold at which it flags. Both
  go through one function:

      calibrated(raw, threshold) = 1 - 0.5 ** (raw / threshold)

  0 for nothing unusual (raw <= 0), exactly 0.5 at the threshold, 0.75 at twice it, rising
  toward 1 beyond; monotone in raw (a zero threshold gives 1.0 above 0). Every finding a detector raises at its own threshold
  thus scores 0.5 whatever the detector, and a score of 0.9 means "about three thresholds
  out" for an overtime z-score as for an isolation forest.
"""

from __future__ import annotations

CERTAIN = 1.0


def calibrated(raw: float, threshold: float) -> float:
    """Raw unusualness against the detector's explicit threshold, as 0..1 (0.5 at it)."""
    if raw <= 0:
        return 0.0
    if threshold <= 0:  # a zero threshold flags anything above it: every such finding is certain
        return CERTAIN
    return round(1.0 - 0.5 ** (raw / threshold), 4)
