"""Completeness counts for `paywatch doctor` and the benchmarks: how much a run stored."""

from __future__ import annotations

import duckdb

from paywatch.warehouse.queries import query_frame

# Tables whose size says how big a warehouse is (benchmarks print them).
SIZE_TABLES = ("runs", "stg_pay_lines", "findings", "stg_record_runs")


def run_row_counts(con: duckdb.DuckDBPyConnection, run_id: str, run_version: int) -> dict:
    """What one run version stored — grain: one row: `lines` (staged pay lines), `mart`
    (pay lines in the mart) and `verified` (verifications of it)."""
    return query_frame(con, """
        SELECT (SELECT count(*) FROM stg_pay_lines WHERE run_id = $1 AND run_version = $2) AS lines,
               (SELECT count(*) FROM mart_pay_lines WHERE run_id = $1 AND run_version = $2) AS mart,
               (SELECT count(*) FROM verifications WHERE run_id = $1 AND run_version = $2) AS verified""",
                       [run_id, run_version]).row(0, named=True)


def record_copies(con: duckdb.DuckDBPyConnection, run_id: str, run_version: int) -> dict[str, int]:
    """Records the run version carries per staging table (duplicates counted) — grain: one
    entry per staging table with records in the run."""
    return dict(query_frame(con, "SELECT table_name, sum(copies) FROM stg_record_runs WHERE run_id = ? AND "
                                 "run_version = ? GROUP BY ALL", [run_id, run_version]).iter_rows())


def table_sizes(con: duckdb.DuckDBPyConnection, tables: tuple[str, ...] = SIZE_TABLES) -> dict[str, int]:
    """Row count of each named warehouse table — grain: one entry per table."""
    unknown = set(tables) - set(SIZE_TABLES)
    if unknown:  # table names go into the SQL text: only known ones
        raise ValueError(f"not a sized table: {sorted(unknown)}")
    return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def read_every_table(con: duckdb.DuckDBPyConnection) -> int:
    """Read every column of every table once (a checksum per column), so a damaged block
    surfaces as a DuckDB error here rather than in a later command; the number of tables."""
    names = [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' "
        "AND NOT temporary ORDER BY table_name").fetchall()]
    for name in names:
        con.execute(f'SELECT bit_xor(hash(COLUMNS(*))) FROM "{name}"').fetchall()
    return len(names)
