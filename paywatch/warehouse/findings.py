"""Findings and verifications in the warehouse: what `verify` stores and reads back.

Grains: `findings` one row per finding of a run version and configuration version;
`dq_results` one row per data-quality check of a run version (and configuration version);
`verifications` one row per run version and configuration version.
"""

from __future__ import annotations

import json

import duckdb
import polars as pl

from paywatch.faults import checkpoint
from paywatch.warehouse.db import fetch_value, transaction
from paywatch.warehouse.queries import query_frame

FINDING_COLUMNS = ("finding_id", "run_id", "run_version", "pernr", "detector", "category", "severity", "owner",
                   "wage_type", "for_period", "amount_cents", "expected_cents", "currency", "score", "explanation",
                   "evidence", "first_seen_run", "config_version")
# given by GROUP_CASES after triage (paywatch/cases): stored when present, read back always
STORED_COLUMNS = FINDING_COLUMNS + ("case_id",)


def first_seen(con: duckdb.DuckDBPyConnection, earlier_runs: list[str], cfg_version: str) -> pl.DataFrame:
    """One row per finding key (`pernr|detector|wage_type|for_period`) stored for any of
    `earlier_runs` under `cfg_version`: the run it was first seen in, the earliest of
    `earlier_runs` (their order is the history's) holding it."""
    schema = {"_key": pl.String, "first_seen_run": pl.String}
    if not earlier_runs:
        return pl.DataFrame(schema=schema)
    df = query_frame(
        con,
        "SELECT concat_ws('|', coalesce(pernr,''), detector, coalesce(wage_type,''), coalesce(for_period,'')) AS _key, "
        "first_seen_run FROM findings WHERE NOT superseded AND config_version = ? "
        "AND run_id IN (SELECT unnest(?::VARCHAR[]))",
        [cfg_version, earlier_runs],
    )
    order = {r: i for i, r in enumerate(earlier_runs)}
    rows = {}
    for k, r in df.iter_rows():
        if k not in rows or order.get(r, 1 << 30) < order.get(rows[k], 1 << 30):
            rows[k] = r
    return pl.DataFrame({"_key": list(rows), "first_seen_run": list(rows.values())}, schema=schema)


def store_verification(con, run_id: str, run_version: int, cfg: dict, cfg_version: str,
                       findings: pl.DataFrame, checks: list[dict], status: str) -> None:
    """Findings (one row each), data-quality results (one row per check) and the
    verification row of a run version under a configuration version: one transaction."""
    with transaction(con):
        if checks:
            rows = pl.DataFrame([{**c, "run_id": run_id, "run_version": run_version, "engine": c.get("engine", "native"),
                                  "config_version": cfg_version} for c in checks], infer_schema_length=None)
            con.register("_dq", rows)
            con.execute(
                "INSERT INTO dq_results (run_id, run_version, check_name, severity, success, observed, "
                "unexpected_count, staff_affected, sample, detail, engine, config_version) SELECT run_id, run_version, "
                "name, severity, success, observed, unexpected_count, staff_affected, sample, detail, engine, "
                "config_version FROM _dq")
            con.unregister("_dq")
        if findings.height:
            cols = ", ".join(c for c in STORED_COLUMNS if c in findings.columns)
            con.register("_f", findings)
            con.execute(f"INSERT INTO findings ({cols}) SELECT {cols} FROM _f")
            con.unregister("_f")
        checkpoint("store-findings")
        con.execute(
            "INSERT INTO verifications (run_id, run_version, config_version, status, n_findings, config_json) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [run_id, run_version, cfg_version, status, findings.height, json.dumps(cfg, sort_keys=True)])


def stored_verification(con, run_id: str, run_version: int, cfg_version: str):
    """(status, findings, checks) of an earlier identical verification (same run version,
    same configuration version), or None: findings one row each, checks one dict each."""
    status = fetch_value(con, "SELECT status FROM verifications WHERE run_id = ? AND run_version = ? "
                              "AND config_version = ?", [run_id, run_version, cfg_version])
    if status is None:
        return None
    findings = query_frame(con, f"SELECT {', '.join(STORED_COLUMNS)} FROM findings WHERE run_id = ? AND run_version = ? "
                           "AND config_version = ?", [run_id, run_version, cfg_version])
    checks = query_frame(con, "SELECT check_name AS name, severity, success, observed, unexpected_count, staff_affected, "
                         "sample, detail, engine FROM dq_results WHERE run_id = ? AND run_version = ? "
                         "AND coalesce(config_version, ?) = ? ORDER BY check_name",
                    [run_id, run_version, cfg_version, cfg_version])
    return status, findings, checks.to_dicts()
