"""Measured quality in CI: a 1,000-staff x 3-month simulated area against its ground truth,
with the targets of the detectors issue (the full 10,000-staff year runs by hand)."""

from __future__ import annotations

from paywatch.evaluate import evaluate, month_noise
from paywatch.simulate import SimConfig


def test_quality_targets_on_a_small_area():
    full, rules = evaluate(SimConfig(staff=1000, months=3, start="202511", seed=202))
    assert full.recall >= 0.99
    assert full.hold_precision >= 0.95
    assert max(full.false_alarm_rates().values()) <= 0.003
    assert min(full.by_kind.values()) >= 0.95, full.by_kind
    assert len(full.by_kind) >= 15  # nearly every error kind occurred
    # the January scale revision does not flag the population
    noise = month_noise(full, ["202601"])
    assert all(ok for *_, ok in noise.values())
    # the anomaly models add what no rule pins down (overtime outliers)
    assert full.recall >= rules.recall
    if "overtime_outlier" in full.by_kind:
        assert full.by_kind["overtime_outlier"] > rules.by_kind["overtime_outlier"]
