"""mart_run_wage_types, which the view mart_pay_lines joins to the staged lines, and the
migration of a warehouse from before that view. Apart from marts.py, so that opening a
warehouse (db.py) can migrate it without importing the marts, which import db.py."""

from __future__ import annotations

import duckdb

from paywatch.warehouse.fetch import fetch_value


def build_run_wage_types(con: duckdb.DuckDBPyConnection, run_id: str, run_version: int) -> None:
    """mart_run_wage_types — grain: one row per wage type per run version.

    Wage class and owner come from T512W as carried by the same run (the view mart_pay_lines
    joins them to its pay lines, so each line is stored once, in staging). Should T512W list a
    wage type twice (a content break, reported elsewhere), one record is chosen by its content
    key so that the join never multiplies pay lines and the choice is reproducible.
    """
    con.execute("DELETE FROM mart_run_wage_types WHERE run_id = $1 AND run_version = $2",
                [run_id, run_version])
    con.execute(
        """
        INSERT INTO mart_run_wage_types BY NAME
        SELECT l.run_id, l.run_version, s.wage_type, s.wage_class, s.owner
        FROM stg_wage_types s
        JOIN stg_record_runs l
          ON l.table_name = 'stg_wage_types' AND l.record_key = s.record_key
         AND l.run_id = $1 AND l.run_version = $2
        QUALIFY row_number() OVER (PARTITION BY s.wage_type ORDER BY s.record_key) = 1
        """,
        [run_id, run_version],
    )


def migrate_mart_pay_lines(con: duckdb.DuckDBPyConnection) -> None:
    """A warehouse made before mart_pay_lines became a view: fill mart_run_wage_types for every
    run version it staged, then drop the copied lines (staging keeps every one)."""
    if not fetch_value(con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'mart_pay_lines' "
                            "AND database_name = current_database() AND NOT temporary"):
        return
    for run_id, run_version in con.execute("SELECT DISTINCT run_id, run_version FROM stg_pay_lines").fetchall():
        build_run_wage_types(con, run_id, run_version)
    con.execute("DROP TABLE mart_pay_lines")
