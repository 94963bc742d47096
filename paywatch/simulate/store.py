"""Infotype records with the time each version became known, so an extract at time T shows
master data exactly as entered by T (future-dated and late-entered records included)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone

import polars as pl

from paywatch.simulate.reference import OPEN_END, day_before

NEVER = datetime(9999, 1, 1, tzinfo=timezone.utc)

FIELDS: dict[str, tuple[str, ...]] = {
    "actions": ("pernr", "valid_from", "valid_to", "action_type", "action_reason", "employment_status"),
    "assignments": ("pernr", "valid_from", "valid_to", "full_name", "duty_station", "staff_category",
                    "entity", "payroll_area", "cost_centre"),
    "basic_pay": ("pernr", "valid_from", "valid_to", "grade", "step", "employment_pct"),
    "bank_details": ("pernr", "valid_from", "valid_to", "bank_country", "iban", "currency"),
    "family": ("pernr", "member_id", "member_type", "birth_date", "valid_from", "valid_to", "is_dependent"),
}
SCHEMAS = {
    it: {c: (pl.Date if c in ("valid_from", "valid_to", "birth_date") else
             pl.Int64 if c == "employment_pct" else pl.Boolean if c == "is_dependent" else pl.String)
         for c in cols}
    for it, cols in FIELDS.items()
}


@dataclass
class Op:
    """What one change did, so an injected error can be undone exactly."""

    infotype: str
    added: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)


class RecordStore:
    """Append-only record versions per infotype: (values, entered_at, removed_at)."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple]] = {it: [] for it in FIELDS}
        self.entered: dict[str, list[datetime]] = {it: [] for it in FIELDS}
        self.removed: dict[str, list[datetime]] = {it: [] for it in FIELDS}
        self.by_pernr: dict[str, dict[str, list[int]]] = {it: {} for it in FIELDS}

    def add(self, it: str, values: tuple, at: datetime, op: Op | None = None) -> int:
        idx = len(self.rows[it])
        self.rows[it].append(values)
        self.entered[it].append(at)
        self.removed[it].append(NEVER)
        self.by_pernr[it].setdefault(values[0], []).append(idx)
        if op is not None:
            op.added.append(idx)
        return idx

    def remove(self, it: str, idx: int, at: datetime, op: Op | None = None) -> None:
        self.removed[it][idx] = at
        if op is not None:
            op.removed.append(idx)

    def alive(self, it: str, pernr: str) -> list[int]:
        """Indices of the staff member's current record versions (not removed)."""
        return [i for i in self.by_pernr[it].get(pernr, []) if self.removed[it][i] == NEVER]

    def get(self, it: str, idx: int) -> dict:
        return dict(zip(FIELDS[it], self.rows[it][idx]))

    def covering(self, it: str, pernr: str, day: date) -> int | None:
        for i in self.alive(it, pernr):
            r = self.get(it, i)
            if r["valid_from"] <= day <= r["valid_to"]:
                return i
        return None

    def latest(self, it: str, pernr: str) -> dict | None:
        alive = self.alive(it, pernr)
        if not alive:
            return None
        return self.get(it, max(alive, key=lambda i: self.rows[it][i][FIELDS[it].index("valid_from")]))

    def split_at(self, it: str, pernr: str, day: date, changes: dict, at: datetime) -> Op:
        """New values from `day` to the end of the record covering `day` (SAP 'copy and
        delimit'); the earlier part keeps its values."""
        op = Op(it)
        idx = self.covering(it, pernr, day)
        if idx is None:
            raise ValueError(f"no {it} record of {pernr} on {day}")
        old = self.get(it, idx)
        self.remove(it, idx, at, op)
        if old["valid_from"] < day:
            self.add(it, self._tuple(it, old | {"valid_to": day_before(day)}), at, op)
        self.add(it, self._tuple(it, old | changes | {"valid_from": day}), at, op)
        return op

    def end_at(self, it: str, idx: int, last_day: date, at: datetime) -> Op:
        """Delimit one record so that it ends on `last_day`."""
        op = Op(it)
        old = self.get(it, idx)
        self.remove(it, idx, at, op)
        self.add(it, self._tuple(it, old | {"valid_to": last_day}), at, op)
        return op

    def undo(self, op: Op, at: datetime) -> None:
        for i in op.added:
            if self.removed[op.infotype][i] == NEVER:
                self.remove(op.infotype, i, at)
        for i in op.removed:
            self.add(op.infotype, self.rows[op.infotype][i], at)

    @staticmethod
    def _tuple(it: str, d: dict) -> tuple:
        return tuple(d[c] for c in FIELDS[it])

    def frame(self, it: str, at: datetime) -> pl.DataFrame:
        """Record versions known at time `at`, sorted by key."""
        ent, rem = self.entered[it], self.removed[it]
        rows = [r for r, e, x in zip(self.rows[it], ent, rem) if e <= at < x]
        df = pl.DataFrame(rows, schema=SCHEMAS[it], orient="row")
        keys = ["pernr", "member_id", "valid_from"] if it == "family" else ["pernr", "valid_from"]
        return df.sort(keys)


def open_record(pernr: str, start: date, **values) -> dict:
    return {"pernr": pernr, "valid_from": start, "valid_to": OPEN_END, **values}
