"""What the injected errors (errors.py) need of the simulation without importing its engine:
a run's plan and the simulation state they read and change. A module of its own so that
engine.py imports errors.py and never the other way round."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

import numpy as np

from paywatch.simulate.store import RecordStore


@dataclass(frozen=True)
class RunPlan:
    run_id: str
    period: str
    run_type: str
    extracted_at: datetime
    pay_date: date
    index: int


class SimulationState(Protocol):
    """The parts of engine.Simulation the injected errors read and change."""

    cfg: Any  # engine.SimConfig: error_rate, error_kinds, arrival
    rng: np.random.Generator
    staff: dict[str, Any]  # PERNR -> engine.Staff
    store: RecordStore
    ledger: dict[tuple[str, str, str], int]
    errors: list  # errors.InjectedError of the month
    overtime: dict[str, Decimal]
    advances: dict[str, int]  # PERNR -> advance of the month's first off-cycle run
    newcomers: dict[str, str]  # PERNR -> period of hire
    regime_rng: np.random.Generator

    def _time(self, period: str, day: int, hour: int | None = None) -> datetime: ...
