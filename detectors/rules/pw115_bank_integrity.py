"""PW115 bank_integrity — the account a payment goes to (PA0009 on the run's pay date).

- missing_bank_record: a staff member paid in the run has no bank record valid on the pay date
  (or, for a newcomer starting after it, by the end of the month);
- invalid_iban: the account is not a valid IBAN (ISO 13616: country length and format, mod-97
  check digits) where one is due: its first two letters, or the bank's country (BANKS), name
  a country that uses IBANs (an account of a country without IBANs is not checked); an
  account that is a valid IBAN but fails its country's own checks (Belgian bank code
  register, Spanish and French national check digits) gets `national_severity` (info by
  default: the contract promises only free text, and another writer's test accounts may
  carry no national check digits);
- iban_of_separated_staff: the account is on file for another staff member who is separated
  on the pay date (money diverted through a leaver's account is an audit red flag).
Needs the whole population (other staff's accounts): area scope.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import polars as pl
from stdnum import iban as stdnum_iban

from detectors import paymodel as pm
from detectors.base import Detector, finding, findings_frame
from detectors.config import ENABLED, SEVERITIES, SEVERITY, Key, Params
from detectors.context import Context
from detectors.iban import surely_fine
from detectors.money import money
from detectors.privacy import mask_iban

CODE = "PW115"
CONFIG = (ENABLED, SEVERITY,
          Key("national_severity", str, "severity when an account passes ISO 13616 but fails its country's "
              "own checks inside the BBAN (national check digits, bank code register)", SEVERITIES))
CATEGORIES = ("missing_bank_record", "invalid_iban", "iban_of_separated_staff")


@lru_cache(maxsize=512)
def uses_iban(country: str) -> bool:
    """Whether a country is in the IBAN registry (python-stdnum's copy of it)."""
    c = (country or "").upper()
    return len(c) == 2 and c.isalpha() and bool(stdnum_iban._ibandb.info(c)[0][1])


# why stdnum refused an account, by its ValidationError subclass: once for ISO 13616 itself,
# once for the country's own checks inside the BBAN
ISO_FAULTS = {"InvalidChecksum": "its mod-97 check digits are wrong",
              "InvalidLength": "its length is wrong for its country",
              "InvalidFormat": "its format is wrong for its country",
              "InvalidComponent": "its bank code is not one the country's register knows"}
NATIONAL_FAULTS = {"InvalidChecksum": "its national check digits are wrong",
                   "InvalidLength": "its length is wrong for its country",
                   "InvalidFormat": "its format is wrong for its country",
                   # python-stdnum checks Belgian bank codes against the national register
                   "InvalidComponent": "its bank code is not one the country's register knows"}


def _account(account: str | None) -> str:
    return "".join((account or "").split()).upper()


def _fault(e: Exception, faults: dict[str, str], default: str) -> str:
    return faults.get(type(e).__name__, default)


def account_problems(account: str | None, bank_country: str | None) -> tuple[str | None, str | None]:
    """(why `account` fails ISO 13616, why it fails its country's own checks), each None when
    it does not. The ISO part (country, length and format per country, mod-97 check digits)
    applies where an IBAN is due; the national part (national check digits, bank code
    register: BE, ES, FR, ...) only to an ISO-valid IBAN, and goes beyond what the extract
    contract promises. One full validation settles most accounts; only a refused one is
    validated again without the country's checks, to tell the two apart."""
    acc = _account(account)
    prefix = acc[:2]
    if not (uses_iban(prefix) or uses_iban(bank_country or "")):
        return None, None
    if not uses_iban(prefix):
        return "it does not start with the code of a country that uses IBANs", None
    national = None
    try:
        stdnum_iban.validate(acc)
    except Exception as full:  # stdnum raises one ValidationError subclass per kind of fault
        try:
            stdnum_iban.validate(acc, check_country=False)
        except Exception as e:
            return _fault(e, ISO_FAULTS, "it is not a valid IBAN"), None
        national = _fault(full, NATIONAL_FAULTS, "it fails its country's own checks")
    if bank_country and uses_iban(bank_country) and prefix != bank_country.upper():
        return f"it is an account of {prefix} while the bank's country is {bank_country}", None
    return None, national


def iban_problem(account: str | None, bank_country: str | None) -> str | None:
    """Why `account` fails ISO 13616 where an IBAN is due; None: valid, or not an IBAN country."""
    return account_problems(account, bank_country)[0]


def national_problem(account: str | None) -> str | None:
    """Why an account that passes ISO 13616 fails its country's own checks; None when it
    passes or its country has none."""
    acc = _account(account)
    return account_problems(acc, acc[:2])[1]


def _verdicts(pairs: pl.DataFrame) -> pl.DataFrame:
    """`account_problems` of each (iban, bank_country) pair: valid accounts of the bank's
    country are settled for all at once (detectors/iban.py), stdnum sees the rest."""
    if pairs.height == 0:  # every account already judged (Verdicts): the check's plan alone costs ms
        return pairs.with_columns(pl.lit(None, dtype=pl.String).alias("problem"),
                                  pl.lit(None, dtype=pl.String).alias("national"))
    fine = surely_fine(pairs)
    settled = pairs.filter(fine).with_columns(pl.lit(None, dtype=pl.String).alias("problem"),
                                             pl.lit(None, dtype=pl.String).alias("national"))
    rest = pairs.filter(~fine)
    asked = rest.with_columns(pl.struct("iban", "bank_country").map_elements(
        lambda s: dict(zip(("problem", "national"), account_problems(s["iban"], s["bank_country"]))),
        return_dtype=pl.Struct({"problem": pl.String, "national": pl.String})).alias("_p")).unnest("_p")
    return pl.concat([settled, asked.select(settled.columns)])


class Verdicts:
    """The verdict on each account (`_verdicts`), kept for this process: a verdict is a
    function of the account and the bank's country alone, and SIM2, SIM3 and FINAL pay into
    the accounts SIM1 paid into (a warm worker checks a month's accounts once). Bounded:
    past `cap` pairs it starts afresh. Findings are the same with or without it
    (tests/test_speed_identity.py)."""

    def __init__(self, cap: int = 400_000):
        self.cap = cap
        self._known = pl.DataFrame(schema={"iban": pl.String, "bank_country": pl.String,
                                           "problem": pl.String, "national": pl.String})
        self._lock = threading.Lock()

    def of(self, pairs: pl.DataFrame) -> pl.DataFrame:
        """pairs (iban, bank_country, unique) with their `problem` and `national` columns."""
        pairs = pairs.select(pl.col("iban").cast(pl.String), pl.col("bank_country").cast(pl.String))
        with self._lock:
            known = self._known
        keys = ["iban", "bank_country"]
        new = _verdicts(pairs.join(known, on=keys, how="anti", nulls_equal=True))
        if new.height:
            with self._lock:
                grown = pl.concat([self._known, new]).unique(keys, keep="first", maintain_order=True)
                self._known = grown if grown.height <= self.cap else new
            known = pl.concat([known, new])  # the snapshot and what it lacked: disjoint
        return pairs.join(known, on=keys, how="left", nulls_equal=True)


VERDICTS = Verdicts()


def _paid(ctx: Context) -> pl.DataFrame:
    """Staff paid by the run (/560 above zero). Grain: one row per staff member."""
    return (ctx.inp.lines.filter(pl.col("wage_type") == "/560").group_by("pernr")
            .agg(pl.col("amount_cents").sum().alias("net"), pl.col("currency").first())
            .filter(pl.col("net") > 0))


def run(ctx: Context, params: Params) -> pl.DataFrame:
    day = ctx.inp.history.pay_date or pm.month_bounds(ctx.meta.period)[1]
    end = max(day, pm.month_bounds(ctx.meta.period)[1])
    bank = ctx.inp.md["bank_details"]
    # the record valid on the pay date; for a newcomer who starts after it (paid in this
    # month's run), the first record starting between the pay date and the month's end
    on_day = (bank.filter((pl.col("valid_from") <= end) & (pl.col("valid_to") >= day))
              .sort("pernr", "valid_from").unique("pernr", keep="first", maintain_order=True))
    paid = _paid(ctx)
    rows = []
    for r in paid.join(on_day.select("pernr"), on="pernr", how="anti").iter_rows(named=True):
        text = (f"This run pays {money(r['net'], r['currency'])} on {day} but the staff member has no bank record "
                f"(PA0009) valid on that day.")
        rows.append(finding(ctx, params, r["pernr"], "missing_bank_record", text, owner="HR", wage_type="/560",
                            amount_cents=r["net"], currency=r["currency"], evidence={"pay_date": str(day)}))
    accounts = paid.join(on_day.select("pernr", "iban", "bank_country"), on="pernr")
    problems = VERDICTS.of(accounts.select("iban", "bank_country").unique())
    bad = accounts.join(problems, on=["iban", "bank_country"], how="left", nulls_equal=True).filter(
        pl.col("problem").is_not_null() | pl.col("national").is_not_null())
    for r in bad.iter_rows(named=True):
        acc = f"The bank account {mask_iban(r['iban'] or '')} ({r['bank_country']}) that receives " \
              f"{money(r['net'], r['currency'])} on {day}"
        if r["problem"] is not None:
            text, severity = f"{acc} is not a valid IBAN: {r['problem']}.", None
        else:  # a valid IBAN by ISO 13616 that its bank may still refuse: worth a look, not a hold
            text = f"{acc} is a valid IBAN by ISO 13616 but fails its country's own check: {r['national']}."
            severity = params.national_severity
        rows.append(finding(ctx, params, r["pernr"], "invalid_iban", text, owner="HR", wage_type="/560",
                            amount_cents=r["net"], currency=r["currency"], severity=severity,
                            evidence={"iban_masked": mask_iban(r["iban"] or ""),
                                      "problem": r["problem"] or r["national"]}))
    separated = (ctx.inp.md["actions"].filter((pl.col("valid_from") <= day) & (pl.col("valid_to") >= day))
                 .group_by("pernr").agg(pl.col("employment_status").max().alias("_st"))
                 .filter(pl.col("_st") == "0").select("pernr"))
    leavers = (bank.join(separated, on="pernr").group_by("iban")
               .agg(pl.col("pernr").unique().sort().alias("leavers"), pl.col("valid_to").max().alias("used_until")))
    hits = (accounts.join(leavers, on="iban")
            .with_columns(pl.col("leavers").list.set_difference(pl.concat_list("pernr")))
            .filter(pl.col("leavers").list.len() > 0))
    for r in hits.iter_rows(named=True):
        text = (f"The bank account {mask_iban(r['iban'])} that receives {money(r['net'], r['currency'])} on {day} "
                f"is also on file for staff {', '.join(r['leavers'])}, separated on that day (their record runs to "
                f"{r['used_until']}).")
        rows.append(finding(ctx, params, r["pernr"], "iban_of_separated_staff", text, owner="HR", wage_type="/560",
                            amount_cents=r["net"], currency=r["currency"],
                            evidence={"iban_masked": mask_iban(r["iban"]), "separated_staff": r["leavers"]}))
    return findings_frame(rows)


DETECTOR = Detector(CODE, "bank_integrity", CATEGORIES, run, config=CONFIG, scope="area",
                    description="Checks the account each payment goes to: present, a valid IBAN, not a leaver's.")
