"""Views over findings + cases + decisions: lifecycle, exclusions, KPI. Derived, never stored, so
re-computing them never rewrites history (docs/design.md)."""

from __future__ import annotations

import duckdb

from paywatch.warehouse.fetch import fetch_value

# A finding's identity across the runs of a month: staff member, detector, wage type,
# for-period (issue: lifecycle). Decisions attach to an identity.
VIEWS: dict[str, str] = {
    # grain: one row per pay line per run version: the staged line with its wage class and
    # owner from T512W as the run carries it (mart_run_wage_types), and whether it is a retro
    # line; a view, so that a run's lines are written once
    "mart_pay_lines": """
SELECT p.run_id, p.run_version, p.line_no, p.pernr, p.for_period, p.in_period, p.wage_type,
       p.amount_cents, p.currency, p.quantity, w.wage_class, w.owner, p.for_period < p.in_period AS is_retro
FROM stg_pay_lines p
LEFT JOIN mart_run_wage_types w
  ON w.run_id = p.run_id AND w.run_version = p.run_version AND w.wage_type = p.wage_type""",
    # grain: one row per finding of the current version of each run, under the configuration
    # of that run version's latest verification
    "current_findings": """
SELECT f.*, r.payroll_area, r.period, r.run_type, r.order_extracted_at,
       concat_ws('|', coalesce(f.pernr, ''), f.detector, coalesce(f.wage_type, ''), coalesce(f.for_period, '')) AS identity
FROM findings f
JOIN runs r ON r.run_id = f.run_id AND r.version = f.run_version AND r.is_current
JOIN (SELECT run_id, run_version, arg_max(config_version, verified_at) AS config_version
      FROM verifications GROUP BY ALL) v
  ON v.run_id = f.run_id AND v.run_version = f.run_version AND v.config_version = f.config_version
WHERE NOT f.superseded""",
    # grain: one row per case of the current version of each run, under the configuration of
    # that run version's latest verification (as current_findings)
    "current_cases": """
SELECT c.*, r.run_type, r.order_extracted_at
FROM cases c
JOIN runs r ON r.run_id = c.run_id AND r.version = c.run_version AND r.is_current
JOIN (SELECT run_id, run_version, arg_max(config_version, verified_at) AS config_version
      FROM verifications GROUP BY ALL) v
  ON v.run_id = c.run_id AND v.run_version = c.run_version AND v.config_version = c.config_version""",
    # grain: one row per decision with the identity it applies to, and its approval: a
    # release awaits a second person's approval before it takes effect (maker-checker)
    "decision_keys": """
SELECT d.*, concat_ws('|', coalesce(d.pernr, ''), d.detector, coalesce(d.wage_type, ''), coalesce(d.for_period, '')) AS identity,
       r.period AS decided_in_period, a.approved_by, a.approved_at,
       (d.action = 'release' AND a.approved_by IS NULL) AS awaiting_approval
FROM decisions d LEFT JOIN runs r ON r.run_id = d.run_id AND r.is_current
LEFT JOIN (SELECT decision_id, arg_min(approved_by, approved_at) AS approved_by, min(approved_at) AS approved_at
           FROM decision_approvals GROUP BY decision_id) a ON a.decision_id = d.decision_id""",
    # grain: one row per decision: the audit trail with proposer, approver and both times
    "decision_trail": """
SELECT decision_id, finding_id, case_id, run_id, pernr, detector, category, wage_type, for_period, action, assignee,
       actor AS proposed_by, decided_at AS proposed_at, reason, expires_on, approved_by, approved_at,
       CASE WHEN awaiting_approval THEN 'awaiting approval' ELSE 'in force' END AS status
FROM decision_keys ORDER BY decision_id""",
    # grain: one row per finding with the reviewer's latest applicable decision (if any):
    # a decision applies within its period; 'expected' applies to the same staff member,
    # detector and wage type in any run until it expires
    "findings_decided": """
SELECT f.*, d.action AS decision, d.actor AS decided_by, d.reason AS decision_reason, d.decided_at,
       d.expires_on AS decision_expires_on, d.approved_by AS decision_approved_by
FROM current_findings f
LEFT JOIN LATERAL (
    SELECT * FROM decision_keys k
    WHERE NOT k.awaiting_approval AND k.action <> 'assign' AND ((k.identity = f.identity AND (k.decided_in_period IS NULL OR k.decided_in_period = f.period)
           AND k.action <> 'expected')
       OR (k.action = 'expected' AND k.pernr = f.pernr AND k.detector = f.detector
           AND coalesce(k.wage_type, '') = coalesce(f.wage_type, '')
           AND (k.expires_on IS NULL OR k.expires_on >= strptime(f.period || '01', '%Y%m%d')::DATE)))
    ORDER BY k.decided_at DESC, k.decision_id DESC LIMIT 1) d ON true""",
    # grain: one row per finding identity per regular run of its period, with its status:
    # new (first seen), persisting, resolved (seen earlier in the month, gone now), reopened
    "finding_lifecycle": """
WITH rr AS (
    SELECT run_id, payroll_area, period, run_type,
           row_number() OVER (PARTITION BY payroll_area, period ORDER BY order_extracted_at, run_id) AS seq
    FROM runs WHERE is_current AND run_type <> 'OFFCYCLE'),
seen AS (
    SELECT f.payroll_area, f.period, f.identity, any_value(f.pernr) AS pernr, any_value(f.detector) AS detector,
           any_value(f.wage_type) AS wage_type, any_value(f.for_period) AS for_period, rr.seq, rr.run_id,
           min(CASE f.severity WHEN 'hold' THEN 0 WHEN 'review' THEN 1 ELSE 2 END) AS sev_rank,
           any_value(f.owner) AS owner, any_value(f.category) AS category
    FROM current_findings f JOIN rr ON rr.run_id = f.run_id GROUP BY ALL),
ids AS (
    SELECT payroll_area, period, identity, any_value(pernr) AS pernr, any_value(detector) AS detector,
           any_value(wage_type) AS wage_type, any_value(for_period) AS for_period, any_value(owner) AS owner,
           any_value(category) AS category, min(seq) AS first_seq, arg_min(run_id, seq) AS first_seen_run
    FROM seen GROUP BY ALL),
grid AS (
    SELECT i.*, rr.run_id, rr.run_type, rr.seq FROM ids i JOIN rr USING (payroll_area, period) WHERE rr.seq >= i.first_seq)
SELECT g.payroll_area, g.period, g.run_id, g.run_type, g.identity, g.pernr, g.detector, g.category, g.wage_type,
       g.for_period, g.owner, g.first_seen_run, g.seq - g.first_seq AS age_runs,
       CASE WHEN s.seq IS NOT NULL AND g.seq = g.first_seq THEN 'new'
            WHEN s.seq IS NOT NULL AND prev.seq IS NULL THEN 'reopened'
            WHEN s.seq IS NOT NULL THEN 'persisting'
            ELSE 'resolved' END AS status,
       CASE s.sev_rank WHEN 0 THEN 'hold' WHEN 1 THEN 'review' WHEN 2 THEN 'info' END AS severity
FROM grid g
LEFT JOIN seen s ON s.identity = g.identity AND s.period = g.period AND s.payroll_area = g.payroll_area AND s.seq = g.seq
LEFT JOIN seen prev ON prev.identity = g.identity AND prev.period = g.period AND prev.payroll_area = g.payroll_area
                   AND prev.seq = g.seq - 1""",
    # grain: one row per staff member excluded from payment at a FINAL: an open hold that no
    # reviewer released, marked false positive or expected
    "exclusions": """
SELECT payroll_area, period, run_id, pernr, list(DISTINCT category ORDER BY category) AS categories,
       list(DISTINCT owner ORDER BY owner) AS owners, count(*) AS open_holds,
       sum(abs(coalesce(amount_cents, 0))) AS amount_at_risk_cents
FROM findings_decided
WHERE run_type = 'FINAL' AND severity = 'hold'
  AND coalesce(decision, '') NOT IN ('release', 'false_positive', 'expected')
GROUP BY ALL""",
    # grain: one row per case per payroll area and month (case ids are stable within a month):
    # where it was first seen, the regular run in which it was gone for good (fixed), days to
    # fix (between the two runs' extraction), whether it was fixed before the FINAL and
    # whether it held its staff member at FINAL; the entity is the staff member's PA0001
    # ORGEH valid in the month (else the latest) as carried by the first-seen run
    "case_journey": """
WITH rr AS (
    SELECT run_id, version, payroll_area, period, run_type, order_extracted_at,
           row_number() OVER (PARTITION BY payroll_area, period ORDER BY order_extracted_at, run_id) AS seq
    FROM runs WHERE is_current AND run_type <> 'OFFCYCLE'),
seen AS (
    SELECT rr.payroll_area, rr.period, c.case_id, arg_max(c.pernr, rr.seq) AS pernr, arg_max(c.owner, rr.seq) AS owner,
           arg_max(c.root_cause, rr.seq) AS root_cause,
           min(CASE c.severity WHEN 'hold' THEN 0 WHEN 'review' THEN 1 ELSE 2 END) AS sev_rank,
           min(rr.seq) AS first_seq, max(rr.seq) AS last_seq
    FROM current_cases c JOIN rr ON rr.run_id = c.run_id GROUP BY ALL),
ends AS (
    SELECT payroll_area, period, max(seq) FILTER (run_type = 'FINAL') AS final_seq FROM rr GROUP BY ALL),
held AS (
    SELECT DISTINCT payroll_area, period, case_id FROM findings_decided
    WHERE run_type = 'FINAL' AND severity = 'hold' AND case_id IS NOT NULL
      AND coalesce(decision, '') NOT IN ('release', 'false_positive', 'expected')),
ent AS (
    SELECT l.run_id, a.pernr,
           arg_max(a.entity, {'in_month': a.valid_from <= last_day(strptime(r.period || '01', '%Y%m%d')::DATE)
                                           AND a.valid_to >= strptime(r.period || '01', '%Y%m%d')::DATE,
                              'valid_from': a.valid_from, 'valid_to': a.valid_to, 'entity': a.entity}) AS entity
    FROM stg_record_runs l JOIN stg_assignments a ON a.record_key = l.record_key
    JOIN rr r ON r.run_id = l.run_id AND r.version = l.run_version
    WHERE l.table_name = 'stg_assignments' GROUP BY ALL)
SELECT s.payroll_area, s.period, s.case_id, s.pernr, s.owner, s.root_cause, coalesce(ent.entity, '?') AS entity,
       CASE s.sev_rank WHEN 0 THEN 'hold' WHEN 1 THEN 'review' ELSE 'info' END AS severity,
       f.run_id AS first_seen_run, f.run_type AS first_seen_run_type, x.run_id AS fixed_in_run,
       x.run_type AS fixed_in_run_type, date_diff('day', f.order_extracted_at, x.order_extracted_at) AS days_to_fix,
       f.run_type IN ('SIM1', 'SIM2') AS opened_early,
       e.final_seq IS NOT NULL AND s.last_seq < e.final_seq AS fixed_before_final,
       h.case_id IS NOT NULL AS held_at_final
FROM seen s
JOIN rr f ON f.payroll_area = s.payroll_area AND f.period = s.period AND f.seq = s.first_seq
LEFT JOIN rr x ON x.payroll_area = s.payroll_area AND x.period = s.period AND x.seq = s.last_seq + 1
LEFT JOIN ends e ON e.payroll_area = s.payroll_area AND e.period = s.period
LEFT JOIN held h ON h.payroll_area = s.payroll_area AND h.period = s.period AND h.case_id = s.case_id
LEFT JOIN ent ON ent.run_id = f.run_id AND ent.pernr = s.pernr""",
    # grain: one row per payroll area and month: staff excluded at FINAL and the 12-month
    # average (the baseline and target lines are configuration: paywatch.settings.kpi_targets)
    "kpi_monthly": """
WITH finals AS (SELECT DISTINCT payroll_area, period FROM runs WHERE is_current AND run_type = 'FINAL'),
n AS (SELECT f.payroll_area, f.period, count(e.pernr) AS excluded_staff
      FROM finals f LEFT JOIN exclusions e USING (payroll_area, period) GROUP BY ALL)
SELECT payroll_area, period, excluded_staff,
       avg(excluded_staff) OVER (PARTITION BY payroll_area ORDER BY period ROWS BETWEEN 11 PRECEDING AND CURRENT ROW)
           AS avg_12m
FROM n ORDER BY payroll_area, period""",
}


def ensure_views(con: duckdb.DuckDBPyConnection) -> None:
    """Create the views, or replace one whose definition changed (never needlessly)."""
    for name, sql in VIEWS.items():
        have = fetch_value(con, "SELECT sql FROM duckdb_views() WHERE view_name = ? AND NOT internal", [name])
        if have is None or sql.strip() not in have:
            con.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")
