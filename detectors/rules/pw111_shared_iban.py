"""PW111 shared_iban — one bank account paid for several staff members (audit red flag).

Bank records (PA0009) valid during the period are grouped by IBAN. Where two or more staff
share an account, the staff member(s) whose record with it started last are flagged (the
newcomer to an existing account; ties flag all of them), and so is every holder whose record
with it took effect this month: a bank change to an account that a new hire's first record then
carries puts the change first in time, yet it is the change that may divert pay. IBANs are
shown masked.
"""

from __future__ import annotations

import polars as pl

from detectors import paymodel as pm
from detectors.base import Detector, finding, findings_frame
from detectors.config import ENABLED, SEVERITY, Params
from detectors.context import Context
from detectors.privacy import mask_iban

CODE = "PW111"
CONFIG = (ENABLED, SEVERITY)


def shared_accounts(bank: pl.DataFrame, first, last) -> pl.DataFrame:
    """Staff sharing an account valid in [first, last]. Grain: staff member x IBAN."""
    valid = bank.filter((pl.col("valid_from") <= last) & (pl.col("valid_to") >= first))
    per = valid.group_by("iban", "pernr").agg(pl.col("valid_from").min().alias("since"))
    return (per.with_columns(pl.col("pernr").n_unique().over("iban").alias("holders"),
                             pl.col("since").max().over("iban").alias("newest"))
            .filter(pl.col("holders") > 1))


def run(ctx: Context, params: Params) -> pl.DataFrame:
    first, last, _ = pm.month_bounds(ctx.meta.period)
    shared = shared_accounts(ctx.inp.md["bank_details"], first, last)
    paid = ctx.paid
    flagged = shared.filter((pl.col("since") == pl.col("newest")) | (pl.col("since") >= first)).join(paid, on="pernr")
    rows = []
    for r in flagged.iter_rows(named=True):
        others = sorted(set(shared.filter(pl.col("iban") == r["iban"])["pernr"].to_list()) - {r["pernr"]})
        text = (f"Bank account {mask_iban(r['iban'])}, on file for this staff member since "
                f"{r['since']}, is also the account of staff {', '.join(others)}.")
        rows.append(finding(ctx, params, r["pernr"], "shared_iban", text, owner="HR",
                            evidence={"iban_masked": mask_iban(r["iban"]), "other_staff": others,
                                      "since": str(r["since"])}))
    return findings_frame(rows)


DETECTOR = Detector(CODE, "shared_iban", ("shared_iban",), run, config=CONFIG,
                    description="Flags a bank account shared by several staff members.", scope="area")
