"""The warehouse schema (DDL) — every table states its grain.

Layers (docs/design.md): raw (archive + delivery log) ▸ staging ▸ marts ▸ findings, cases, decisions.
Staging tables and columns are derived from the extract contract (paywatch.extract.schema),
so a renamed column is renamed in one place only. All DDL is idempotent
(CREATE ... IF NOT EXISTS): opening an existing warehouse changes nothing.

Conventions: amounts are BIGINT cents (`*_cents`); timestamps are TIMESTAMP in UTC;
periods stay text `YYYYMM` (they sort correctly as text and are compared as in the contract).
"""

from __future__ import annotations

from paywatch.extract.schema import FILES, STAGING_TABLES, Column

SCHEMA_VERSION = "1"

# Numbers (ANZHL, MULTIPLIER, VALUE) keep any number of decimals in the contract. 18 decimals
# hold every realistic value exactly; a delivery needing more widens the column (load.py),
# never rounds.
NUMBER_SCALE = 18

RESULT_FILE = "RT.csv"
MASTER_FILES = ("PA0000.csv", "PA0001.csv", "PA0008.csv", "PA0009.csv", "PA0021.csv")
REFERENCE_FILES = ("T510.csv", "T7UNPA.csv", "T512W.csv", "T7UNRATE.csv")
# Files whose records repeat from run to run: stored once per distinct record.
RECORD_FILES = MASTER_FILES + REFERENCE_FILES
RECORD_TABLES = {STAGING_TABLES[f]: f for f in RECORD_FILES}
MASTER_TABLES = tuple(STAGING_TABLES[f] for f in MASTER_FILES)
REFERENCE_TABLES = tuple(STAGING_TABLES[f] for f in REFERENCE_FILES)
PAY_LINES_TABLE = STAGING_TABLES[RESULT_FILE]

_SQL_TYPES = {
    "id": "VARCHAR",
    "code": "VARCHAR",
    "text": "VARCHAR",
    "period": "VARCHAR",
    "seqnr": "VARCHAR",  # opaque: carried, never interpreted
    "date": "DATE",  # 99991231 (open-ended) kept as 9999-12-31
    "amount": "BIGINT",  # cents
    "number": f"DECIMAL(38,{NUMBER_SCALE})",
    "integer": "BIGINT",
}


def sql_type(col: Column) -> str:
    """DuckDB type of a staging column (DEPENDENT 'X'/empty becomes BOOLEAN is_dependent)."""
    if col.name == "DEPENDENT":
        return "BOOLEAN"
    return _SQL_TYPES[col.kind]


def staging_columns(file_name: str) -> tuple[Column, ...]:
    return FILES[file_name]


def _column_ddl(cols: tuple[Column, ...]) -> str:
    # NOT NULL mirrors the contract: only the nullable columns may be empty.
    parts = []
    for c in cols:
        null = "" if c.nullable else " NOT NULL"
        if c.name == "DEPENDENT":
            null = " NOT NULL"  # empty DEPENDENT is stored as false
        parts.append(f"    {c.staging} {sql_type(c)}{null}")
    return ",\n".join(parts)


def _record_table_ddl(file_name: str) -> tuple[str, str, str]:
    table = STAGING_TABLES[file_name]
    kind = "master data" if file_name in MASTER_FILES else "reference"
    grain = (
        f"grain: one row per distinct {kind} record of {file_name} ever received "
        f"(record_key = md5 of its typed content); the runs carrying it are in stg_record_runs"
    )
    ddl = (
        f"CREATE TABLE IF NOT EXISTS {table} (\n"
        f"    record_key VARCHAR NOT NULL,\n{_column_ddl(FILES[file_name])}\n)"
    )
    return table, grain, ddl


def _pay_lines_ddl() -> tuple[str, str, str]:
    grain = "grain: one row per RT.csv record (pay line) per run version"
    ddl = (
        f"CREATE TABLE IF NOT EXISTS {PAY_LINES_TABLE} (\n"
        "    run_id VARCHAR NOT NULL,\n"
        "    run_version INTEGER NOT NULL,\n"
        "    line_no BIGINT NOT NULL,  -- record index in RT.csv, 1 = first data record\n"
        f"{_column_ddl(FILES[RESULT_FILE])}\n)"
    )
    return PAY_LINES_TABLE, grain, ddl


_FIXED_TABLES: list[tuple[str, str, str]] = [
    (
        "warehouse_meta",
        "grain: one row per setting key",
        """CREATE TABLE IF NOT EXISTS warehouse_meta (
    key VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
)""",
    ),
    (
        "raw_files",
        ("grain: one row per distinct file content (sha256) ever received; the bytes are in "
         "archive/<sha256[:2]>/<sha256>"),
        """CREATE TABLE IF NOT EXISTS raw_files (
    sha256 VARCHAR PRIMARY KEY,
    file_name VARCHAR NOT NULL,          -- name under which it was first received
    size_bytes BIGINT NOT NULL,
    archived_path VARCHAR NOT NULL,      -- relative to the archive folder
    first_received_at TIMESTAMP NOT NULL -- UTC
)""",
    ),
    (
        "deliveries",
        ("grain: one row per delivery (received run folder), append-only audit log; only "
         "replaced_by is set later"),
        """CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id BIGINT PRIMARY KEY,
    run_id VARCHAR,                      -- null when a rejected manifest had none
    run_version INTEGER,                 -- version loaded (loaded/replaced) or current (noop)
    received_at TIMESTAMP NOT NULL,      -- UTC
    source_folder VARCHAR,
    manifest_sha256 VARCHAR,
    outcome VARCHAR NOT NULL CHECK (outcome IN ('loaded', 'noop', 'replaced', 'rejected')),
    reason VARCHAR,
    replaced_delivery_id BIGINT,         -- the delivery whose run version this one replaced
    replaced_by BIGINT,                  -- the delivery that replaced this one's run version
    quarantine_path VARCHAR
)""",
    ),
    (
        "delivery_files",
        "grain: one row per received file per delivery",
        """CREATE TABLE IF NOT EXISTS delivery_files (
    delivery_id BIGINT NOT NULL,
    file_name VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    size_bytes BIGINT NOT NULL,
    PRIMARY KEY (delivery_id, file_name)
)""",
    ),
    (
        "runs",
        "grain: one row per delivered run version",
        """CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR NOT NULL,
    version INTEGER NOT NULL,            -- 1, 2, ... (a correction is a new version)
    payroll_area VARCHAR NOT NULL,
    period VARCHAR NOT NULL,             -- YYYYMM
    run_type VARCHAR NOT NULL,
    pay_date DATE NOT NULL,
    extracted_at TIMESTAMP NOT NULL,     -- UTC, this version's manifest
    order_extracted_at TIMESTAMP NOT NULL, -- UTC, version 1's: a correction takes its place
    delivery_id BIGINT NOT NULL,
    is_current BOOLEAN NOT NULL,
    loaded_at TIMESTAMP NOT NULL,        -- UTC
    PRIMARY KEY (run_id, version)
)""",
    ),
    (
        "stg_record_runs",
        ("grain: one row per distinct record per staging table per run version carrying it "
         "(copies = how often the record occurs in that run's file)"),
        """CREATE TABLE IF NOT EXISTS stg_record_runs (
    table_name VARCHAR NOT NULL,
    record_key VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    run_version INTEGER NOT NULL,
    copies INTEGER NOT NULL
)""",
    ),
    (
        "mart_run_wage_types",
        ("grain: one row per wage type per run version: its T512W record as that run carries it "
         "(mart_pay_lines, a view, joins it to the run's staged pay lines)"),
        """CREATE TABLE IF NOT EXISTS mart_run_wage_types (
    run_id VARCHAR NOT NULL,
    run_version INTEGER NOT NULL,
    wage_type VARCHAR NOT NULL,
    wage_class VARCHAR,
    owner VARCHAR
)""",
    ),
    (
        "mart_staff_run",
        "grain: one row per staff member per run version present in RT",
        """CREATE TABLE IF NOT EXISTS mart_staff_run (
    run_id VARCHAR NOT NULL,
    run_version INTEGER NOT NULL,
    pernr VARCHAR NOT NULL,
    n_lines BIGINT NOT NULL,
    gross_cents BIGINT,                  -- /101 as written (sum if twice, null if missing)
    net_cents BIGINT,                    -- /550 as written
    paid_cents BIGINT,                   -- /560 as written
    currency VARCHAR,                    -- null when the lines mix currencies
    n_currencies BIGINT NOT NULL
)""",
    ),
    (
        "findings",
        "grain: one row per finding (immutable; a correction of its run sets superseded)",
        """CREATE TABLE IF NOT EXISTS findings (
    finding_id VARCHAR PRIMARY KEY,
    run_id VARCHAR NOT NULL,
    run_version INTEGER NOT NULL,
    pernr VARCHAR,
    detector VARCHAR NOT NULL,
    category VARCHAR NOT NULL,
    severity VARCHAR NOT NULL CHECK (severity IN ('hold', 'review', 'info')),
    owner VARCHAR CHECK (owner IN ('HR', 'FINANCE')),
    wage_type VARCHAR,
    for_period VARCHAR,
    amount_cents BIGINT,
    expected_cents BIGINT,
    currency VARCHAR,
    score DOUBLE CHECK (score BETWEEN 0 AND 1),
    explanation VARCHAR NOT NULL,
    evidence JSON,
    first_seen_run VARCHAR,
    config_version VARCHAR NOT NULL,
    superseded BOOLEAN NOT NULL DEFAULT false,
    created_at TIMESTAMP NOT NULL DEFAULT (timezone('UTC', current_timestamp)),
    case_id VARCHAR                      -- the case (table cases) it belongs to; null: stored before cases
)""",
    ),
    (
        "cases",
        ("grain: one row per case per run version per configuration version (a case: one staff "
         "member and one root cause in a run, paywatch/cases; status and severity as at detection — "
         "reports apply the reviewers' decisions in force)"),
        """CREATE TABLE IF NOT EXISTS cases (
    case_id VARCHAR NOT NULL,            -- {area}-{period}-{PERNR}-{root cause}[-{wage type}]: stable in the period
    run_id VARCHAR NOT NULL,
    run_version INTEGER NOT NULL,
    config_version VARCHAR NOT NULL,
    payroll_area VARCHAR NOT NULL,
    period VARCHAR NOT NULL,
    pernr VARCHAR,
    root_cause VARCHAR NOT NULL,         -- category of the finding that explains the others
    root_wage_type VARCHAR,
    root_finding_id VARCHAR,
    owner VARCHAR CHECK (owner IN ('HR', 'FINANCE')),  -- who must fix the cause
    in_copy VARCHAR NOT NULL,            -- the other owners concerned, comma-separated ('' none)
    severity VARCHAR NOT NULL CHECK (severity IN ('hold', 'review', 'info')),
    status VARCHAR NOT NULL CHECK (status IN ('new', 'open')),
    first_seen_run VARCHAR NOT NULL,     -- the run of the period the case first appeared in
    due_date DATE,                       -- the day before the next regular run (payroll calendar)
    days_open INTEGER NOT NULL,          -- days since the first-seen run was extracted
    n_findings BIGINT NOT NULL,
    amount_at_stake_cents BIGINT,        -- largest |found - expected| among its findings
    currency VARCHAR,
    summary VARCHAR NOT NULL,
    PRIMARY KEY (run_id, run_version, config_version, case_id)
)""",
    ),
    (
        "dq_results",
        "grain: one row per data-quality check per run version",
        """CREATE TABLE IF NOT EXISTS dq_results (
    run_id VARCHAR NOT NULL,
    run_version INTEGER NOT NULL,
    check_name VARCHAR NOT NULL,
    severity VARCHAR NOT NULL CHECK (severity IN ('critical', 'warning')),
    success BOOLEAN NOT NULL,
    observed VARCHAR,                    -- the observed value, as text
    unexpected_count BIGINT,
    staff_affected BIGINT,
    sample VARCHAR,                      -- a few offending keys (PERNRs only; no names or IBANs)
    detail VARCHAR NOT NULL,             -- one sentence for Finance
    engine VARCHAR NOT NULL,             -- 'gx' or 'native'
    checked_at TIMESTAMP NOT NULL DEFAULT (timezone('UTC', current_timestamp)),
    config_version VARCHAR               -- configuration (incl. DQ suites) of the verification
)""",
    ),
    (
        "verifications",
        "grain: one row per run version per detector configuration version",
        """CREATE TABLE IF NOT EXISTS verifications (
    run_id VARCHAR NOT NULL,
    run_version INTEGER NOT NULL,
    config_version VARCHAR NOT NULL,
    status VARCHAR NOT NULL CHECK (status IN ('verified', 'dq_blocked')),
    n_findings BIGINT NOT NULL,
    config_json JSON NOT NULL,
    verified_at TIMESTAMP NOT NULL DEFAULT (timezone('UTC', current_timestamp))
)""",
    ),
    (
        "monthly_closes",
        "grain: one row per close of a payroll area's month (append-only; the latest counts)",
        """CREATE TABLE IF NOT EXISTS monthly_closes (
    close_id BIGINT PRIMARY KEY,
    payroll_area VARCHAR NOT NULL,
    period VARCHAR NOT NULL,
    final_run_id VARCHAR NOT NULL,
    excluded_staff BIGINT NOT NULL,
    advances_recommended BIGINT NOT NULL,
    policy JSON NOT NULL,
    closed_at TIMESTAMP NOT NULL DEFAULT (timezone('UTC', current_timestamp))
)""",
    ),
    (
        "close_exclusions",
        "grain: one row per staff member excluded at a monthly close",
        """CREATE TABLE IF NOT EXISTS close_exclusions (
    close_id BIGINT NOT NULL,
    pernr VARCHAR NOT NULL,
    categories VARCHAR NOT NULL,         -- why: the categories of the open holds
    owners VARCHAR NOT NULL,
    open_holds BIGINT NOT NULL,
    net_pay_cents BIGINT,                -- /560 of the FINAL (what was held back)
    currency VARCHAR,
    advance_recommended BOOLEAN NOT NULL
)""",
    ),
    (
        "decisions",
        "grain: one row per reviewer action on a finding key (append-only)",
        """CREATE TABLE IF NOT EXISTS decisions (
    decision_id BIGINT PRIMARY KEY,
    finding_id VARCHAR,                  -- the finding acted on, if one
    run_id VARCHAR,                      -- null: applies to every run
    pernr VARCHAR,
    detector VARCHAR,
    category VARCHAR,
    wage_type VARCHAR,
    for_period VARCHAR,
    action VARCHAR NOT NULL CHECK (action IN ('assign', 'release', 'confirm', 'false_positive', 'expected', 'reopen')),
    assignee VARCHAR,                    -- with 'assign': who is to handle it
    actor VARCHAR NOT NULL,
    reason VARCHAR,
    decided_at TIMESTAMP NOT NULL DEFAULT (timezone('UTC', current_timestamp)),
    expires_on DATE
)""",
    ),
    (
        "decision_approvals",
        ("grain: one row per second person's approval of a decision (append-only; a release "
         "takes effect only once approved by someone other than its author)"),
        """CREATE TABLE IF NOT EXISTS decision_approvals (
    decision_id BIGINT NOT NULL,         -- the decision approved (a release)
    approved_by VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    approved_at TIMESTAMP NOT NULL DEFAULT (timezone('UTC', current_timestamp))
)""",
    ),
    (
        "report_deliveries",
        ("grain: one row per report package per recipient per channel per delivery outcome "
         "(append-only delivery log of paywatch/delivery/; an identical package already "
         "written or sent is not delivered again, so a repeated verify adds no row)"),
        """CREATE TABLE IF NOT EXISTS report_deliveries (
    run_id VARCHAR NOT NULL,
    recipient VARCHAR NOT NULL,          -- routing key, e.g. owner-HR, entity-OHCHR (no addresses)
    channel VARCHAR NOT NULL CHECK (channel IN ('outbox', 'smtp')),
    status VARCHAR NOT NULL CHECK (status IN ('written', 'sent', 'failed')),
    attempts INTEGER NOT NULL,           -- tries made (SMTP: 1 + retries at most)
    error VARCHAR,                       -- why it failed (no personal data)
    content_sha256 VARCHAR NOT NULL,     -- the package content (rows, recipient, data quality)
    n_exceptions BIGINT NOT NULL,
    recorded_at TIMESTAMP NOT NULL       -- UTC, when the outcome was known
)""",
    ),
]


def tables() -> list[tuple[str, str, str]]:
    """(table, grain, DDL) of every warehouse table, in creation order; each DDL starts with
    its grain as a comment (and `ddl_statements` also stores it as the table's comment)."""
    out = list(_FIXED_TABLES)
    out.extend(_record_table_ddl(f) for f in RECORD_FILES)
    out.append(_pay_lines_ddl())
    return [(t, grain, f"-- {grain}\n{ddl}") for t, grain, ddl in out]


def ddl_statements() -> list[str]:
    """Idempotent DDL: tables, then their grain as a catalog comment."""
    stmts = [ddl for _, _, ddl in tables()]
    stmts += MIGRATIONS
    stmts += [f"COMMENT ON TABLE {t} IS {sql_literal(grain)}" for t, grain, _ in tables()]
    return stmts


# Columns added after a table was first created (idempotent, for existing warehouses).
MIGRATIONS = ["ALTER TABLE dq_results ADD COLUMN IF NOT EXISTS config_version VARCHAR",
              # decisions taken on a case (one row per finding of it) keep the case id
              "ALTER TABLE decisions ADD COLUMN IF NOT EXISTS case_id VARCHAR",
              "ALTER TABLE findings ADD COLUMN IF NOT EXISTS case_id VARCHAR"]


def sql_literal(text: str) -> str:
    """A SQL string literal (for DDL, where parameters cannot be bound)."""
    return "'" + text.replace("'", "''") + "'"


def table_grains() -> dict[str, str]:
    return {t: grain for t, grain, _ in tables()}
