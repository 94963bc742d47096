"""Who receives which exceptions of a run: the routing file and `route`.

The routing file (TOML) names the recipients:

- one recipient per **owner** (`[owners.HR]`, `[owners.FINANCE]`): the payroll unit that must
  fix the source. It receives exactly the exceptions whose `owner` is its own — an HR
  recipient never receives a FINANCE-owned row (and so never sees Finance-only deduction
  details), and vice versa. Rows without an owner (none are raised today) go to FINANCE, the
  unit that runs the payroll.
- optional **entity focal points** (`[entities.<ORGEH>]`): the client entity's contact. It
  receives the exceptions (any owner) of the staff whose PA0001 entity (ORGEH, valid in the
  run's period) is its entity, and nothing of any other entity. Rows owned by an owner listed
  in `focal_points_see_details_of` are shown in full; rows of the other owners (by default:
  FINANCE — deductions, totals, advances, bank matters) are *redacted*: the focal point sees
  that the staff member has an exception, its category, severity, wage type and period, but
  no amounts and a neutral sentence instead of the explanation. PERNRs of *other* staff
  inside an explanation (e.g. who shares a bank account) are replaced by "[other staff]":
  they may belong to another entity.

- optional **mail** (`[mail]`): `empty = "skip"` (the default) or `"digest"` — what a
  recipient with nothing to act on in a run gets: no mail, or one digest a day listing the
  runs checked that had nothing for it (paywatch/delivery/digest.py). A run blocked by the
  data-quality gate is always mailed to both owners.

- optional **alerts** (`[alerts]`): the payroll unit's alert address. Late runs, rejected
  deliveries, runs blocked by the data-quality gate and failed mails are mailed there
  (paywatch/alerts.py); without it alerts go to the FINANCE unit, which runs the payroll.

Where the file is: `$PAYWATCH_ROUTING` if set, else `<PAYWATCH_HOME>/routing.toml` (next to
the warehouse), else the documented example `routing.toml` at the repository root, else a
built-in default (the two payroll units at placeholder addresses, no focal points).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

OWNERS = ("HR", "FINANCE")
MAIL_EMPTY = ("skip", "digest")  # [mail] empty
REPO_ROUTING = Path(__file__).resolve().parents[1] / "routing.toml"
DEFAULT_ROUTING_TEXT = """
focal_points_see_details_of = ["HR"]
[owners.HR]
name = "Payroll HR unit"
to = ["payroll-hr@example.org"]
[owners.FINANCE]
name = "Finance payroll unit"
to = ["payroll-finance@example.org"]
"""
REDACTED_TEXT = ("Exception handled by the {unit}; its amounts and details are shared with "
                 "that unit only.")
UNIT_NAMES = {"HR": "HR payroll unit", "FINANCE": "Finance payroll unit"}
OTHER_STAFF_RE = r"\b\d{8,}(?:, \d{8,})*\b"  # PERNRs inside a sentence (shared_iban names the others)
_EMAIL_RE = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")
_ENTITY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")


class RoutingError(ValueError):
    """The routing file cannot be used (its path and what is wrong)."""


@dataclass(frozen=True)
class Recipient:
    """One routing entry. `key` is stable and safe in file names ('owner-HR', 'entity-OHCHR')."""

    key: str
    kind: str  # 'owner' | 'entity'
    scope: str  # the owner (HR/FINANCE) or the entity code
    name: str
    to: tuple[str, ...]

    @property
    def scope_text(self) -> str:
        if self.kind == "owner":
            return f"Exceptions owned by {UNIT_NAMES.get(self.scope, self.scope)}"
        return f"Exceptions of the staff of entity {self.scope}"


@dataclass(frozen=True)
class Routing:
    recipients: tuple[Recipient, ...]
    focal_points_see_details_of: frozenset[str] = field(default_factory=lambda: frozenset({"HR"}))
    source: str = "built-in default"
    alerts: Recipient | None = None  # where alerts go (None: the FINANCE unit)
    mail_empty: str = "skip"  # [mail] empty: a recipient with nothing to act on gets no mail, or a daily digest

    @property
    def alert_recipient(self) -> Recipient:
        """Who receives alerts: [alerts], else the FINANCE unit."""
        if self.alerts is not None:
            return self.alerts
        fin = self.owner("FINANCE")
        return Recipient("alerts", "alerts", "alerts", fin.name, fin.to)

    def owner(self, owner: str) -> Recipient | None:
        return next((r for r in self.recipients if r.kind == "owner" and r.scope == owner), None)


def routing_file(home: Path | None = None, env: dict | None = None) -> Path | None:
    """The routing file in force (None: the built-in default)."""
    env = os.environ if env is None else env
    if env.get("PAYWATCH_ROUTING"):
        return Path(env["PAYWATCH_ROUTING"])
    if home is not None and (Path(home) / "routing.toml").is_file():
        return Path(home) / "routing.toml"
    return REPO_ROUTING if REPO_ROUTING.is_file() else None


def load_routing(home: Path | None = None, env: dict | None = None) -> Routing:
    """Read and check the routing file (raises RoutingError naming the file)."""
    path = routing_file(home, env)
    if path is None:
        return parse_routing(DEFAULT_ROUTING_TEXT, "built-in default")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RoutingError(f"{path}: cannot be read ({e.strerror or e})") from None
    return parse_routing(text, str(path))


def parse_routing(text: str, source: str = "<text>") -> Routing:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RoutingError(f"{source}: not valid TOML ({e})") from None
    unknown = set(doc) - {"owners", "entities", "focal_points_see_details_of", "version", "alerts", "mail"}
    if unknown:
        raise RoutingError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}")
    recipients: list[Recipient] = []
    owners = doc.get("owners", {})
    for owner, entry in owners.items():
        if owner not in OWNERS:
            raise RoutingError(f"{source}: [owners.{owner}] — owner must be one of {', '.join(OWNERS)}")
        recipients.append(_recipient(source, "owner", owner, entry))
    for owner in OWNERS:
        if owner not in owners:
            raise RoutingError(f"{source}: [owners.{owner}] is missing: every exception needs a recipient")
    for entity, entry in doc.get("entities", {}).items():
        if not _ENTITY_RE.match(entity):
            raise RoutingError(f"{source}: [entities.{entity}] — not an entity code (ORGEH)")
        recipients.append(_recipient(source, "entity", entity, entry))
    see = doc.get("focal_points_see_details_of", ["HR"])
    if not isinstance(see, list) or any(o not in OWNERS for o in see):
        raise RoutingError(f"{source}: focal_points_see_details_of must be a list of {', '.join(OWNERS)}")
    alerts = _recipient(source, "alerts", "alerts", doc["alerts"]) if "alerts" in doc else None
    mail = doc.get("mail", {})
    if not isinstance(mail, dict) or set(mail) - {"empty"}:
        raise RoutingError(f"{source}: [mail] takes one key, empty = \"skip\" or \"digest\"")
    empty = mail.get("empty", "skip")
    if empty not in MAIL_EMPTY:
        raise RoutingError(f"{source}: [mail] empty must be one of {', '.join(repr(x) for x in MAIL_EMPTY)}, "
                           f"not {empty!r}")
    return Routing(tuple(recipients), frozenset(see), source, alerts, empty)


def _recipient(source: str, kind: str, scope: str, entry) -> Recipient:
    where = (f"{source}: [alerts]" if kind == "alerts"
             else f"{source}: [{'owners' if kind == 'owner' else 'entities'}.{scope}]")
    if not isinstance(entry, dict):
        raise RoutingError(f"{where} must be a table")
    extra = set(entry) - {"name", "to"}
    if extra:
        raise RoutingError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
    to = entry.get("to")
    if isinstance(to, str):
        to = [to]
    if not to or not isinstance(to, list) or not all(isinstance(a, str) and _EMAIL_RE.match(a) for a in to):
        raise RoutingError(f"{where}: 'to' must be a non-empty list of e-mail addresses")
    name = entry.get("name") or (UNIT_NAMES.get(scope, scope) if kind == "owner"
                                 else "Payroll alerts" if kind == "alerts" else f"{scope} focal point")
    key = "alerts" if kind == "alerts" else f"{kind}-{scope}"
    return Recipient(key, kind, scope, str(name), tuple(to))


def route(findings: pl.DataFrame, routing: Routing) -> dict[Recipient, pl.DataFrame]:
    """{recipient: its exceptions}, in routing order, every owner recipient present (maybe
    with no rows), focal points only when their entity has exceptions.

    `findings` needs `owner` and `entity` (the staff member's PA0001 entity in the period).
    Focal points get their entity's rows with the owners they may not see in detail redacted
    (`redacted` = true; amounts, currency, explanation and evidence withheld)."""
    f = findings
    if "redacted" not in f.columns:
        f = f.with_columns(pl.lit(False).alias("redacted"))
    owner = pl.col("owner").fill_null("FINANCE")
    out: dict[Recipient, pl.DataFrame] = {}
    for r in routing.recipients:
        if r.kind == "owner":
            out[r] = f.filter(owner == r.scope)
        else:
            mine = f.filter(pl.col("entity").is_not_null() & (pl.col("entity").str.to_uppercase() == r.scope.upper()))
            if mine.height:
                out[r] = redact(mine, routing.focal_points_see_details_of).with_columns(
                    # another staff member named in an explanation may be of another entity
                    pl.col("explanation").str.replace_all(OTHER_STAFF_RE, "[other staff]"))
    return out


def redact(frame: pl.DataFrame, see_details_of: frozenset[str] | set[str]) -> pl.DataFrame:
    """Rows of owners outside `see_details_of` lose their amounts and explanation."""
    hide = ~pl.col("owner").fill_null("FINANCE").is_in(list(see_details_of))
    unit = pl.col("owner").fill_null("FINANCE").replace_strict(UNIT_NAMES, default="payroll unit")
    neutral = pl.format(REDACTED_TEXT.replace("{unit}", "{}"), unit)
    cols = [pl.when(hide).then(pl.lit(None, dtype=frame.schema[c])).otherwise(pl.col(c)).alias(c)
            for c in ("amount_cents", "expected_cents", "currency", "evidence") if c in frame.columns]
    return frame.with_columns(
        *cols,
        pl.when(hide).then(neutral).otherwise(pl.col("explanation")).alias("explanation"),
        (pl.col("redacted") | hide).alias("redacted"),
    )
