"""When a case is due: the day by which its source must be fixed to make the next regular run
(docs/cli-contract.md `cases.csv` `due_date`), from the payroll calendar (`[calendar]`: the day
of the month SIM1, SIM2, SIM3 and FINAL are expected).

Rule: the next regular run after this one is the next in SIM1 ▸ SIM2 ▸ SIM3 ▸ FINAL; after
FINAL it is the next month's SIM1. An off-cycle run (or any other run type) comes before the
regular run that follows the last regular run of its period verified before it (SIM1 when
there was none). The case is due the day before that run's calendar day; a day past the
end of a month is that month's last day. Days open: calendar days from the first run of the
period the case was seen in to this run (extraction dates).
"""

from __future__ import annotations

import calendar as _calendar
from collections.abc import Mapping, Sequence
from datetime import date, timedelta

REGULAR = ("SIM1", "SIM2", "SIM3", "FINAL")


def _shift(period: str, months: int) -> str:
    y, m = divmod(int(period[:4]) * 12 + int(period[4:]) - 1 + months, 12)
    return f"{y:04d}{m + 1:02d}"


def run_day(period: str, run_type: str, cal: Mapping[str, int]) -> date:
    """The calendar day of a regular run of `period` (clamped to the month's last day)."""
    y, m = int(period[:4]), int(period[4:])
    return date(y, m, max(1, min(int(cal[run_type]), _calendar.monthrange(y, m)[1])))


def next_regular(period: str, run_type: str, earlier_regular: Sequence[str] = ()) -> tuple[str, str]:
    """(period, run type) of the next regular run after a run of `run_type` in `period`;
    `earlier_regular`: the regular run types of the period verified before it (for off-cycle runs)."""
    if run_type not in REGULAR:
        done = [REGULAR.index(t) for t in earlier_regular if t in REGULAR]
        if not done:
            return period, REGULAR[0]
        run_type = REGULAR[max(done)]
    i = REGULAR.index(run_type)
    if i + 1 < len(REGULAR):
        return period, REGULAR[i + 1]
    return _shift(period, 1), REGULAR[0]


def due_date(period: str, run_type: str, cal: Mapping[str, int], earlier_regular: Sequence[str] = ()) -> date:
    """The day before the next regular run's calendar day."""
    p, rt = next_regular(period, run_type, earlier_regular)
    return run_day(p, rt, cal) - timedelta(days=1)
