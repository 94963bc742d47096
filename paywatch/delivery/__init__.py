"""Reports upstream: one package per recipient and run (Excel workbook + HTML e-mail),
written to the outbox first, then sent by SMTP when configured.

- text: report-safe texts (IBANs masked, no formulas), data-quality lines
- cases: the run's cases as reports show them (new / still open / resolved since the last
  run, assignee, latest decision) and which of them each recipient sees
- workbook: the .xlsx (Summary, Cases, All findings, one sheet per category)
- mail: subject and first line (what to do by when), the HTML / text bodies (Jinja2
  templates in templates/) and the MIME message
- package: routing the run's exceptions and cases into packages (content hash); no package
  for a recipient with nothing to act on
- digest: the daily digest of runs with nothing to act on (routing.toml `[mail] empty`)
- smtp: SMTP settings from the environment / a Prefect block, sending with backoff
- outbox: the outbox, `deliver`, `send_outbox`, DELIVERY_FAILED.txt, the delivery log
- stage: `deliver_run_reports`, the whole step of a verified run (never raises)

The names below are the package's interface; import them from `paywatch.delivery`.
"""

from paywatch.paths import write_private
from paywatch.delivery.cases import PART_TITLES, cases_for, report_cases
from paywatch.delivery.digest import digest_packages, due_digests, note_quiet
from paywatch.delivery.mail import DEFAULT_SENDER, TOP_N, headline, html_body, mail_context, text_body
from paywatch.delivery.outbox import (
    FAILED_NOTE,
    DeliveryOutcome,
    DeliveryReport,
    deliver,
    record_outcomes,
    send_outbox,
    write_to_outbox,
)
from paywatch.delivery.package import FORMAT_VERSION, Package, build_packages, enrich, period_bounds, staff_directory
from paywatch.delivery.smtp import SmtpConfigError, SmtpSettings, smtp_settings_from_env
from paywatch.delivery.stage import deliver_run_reports
from paywatch.delivery.text import cell_text, dq_details, dq_lines, dq_status_text, safe_name
from paywatch.delivery.workbook import CASE_COLUMNS, COVER_SHEET, SHEET_COLUMNS, workbook_bytes
from paywatch.warehouse.deliveries import delivered_before

__all__ = [
    "CASE_COLUMNS",
    "COVER_SHEET",
    "PART_TITLES",
    "DEFAULT_SENDER",
    "FAILED_NOTE",
    "FORMAT_VERSION",
    "SHEET_COLUMNS",
    "TOP_N",
    "DeliveryOutcome",
    "DeliveryReport",
    "Package",
    "SmtpConfigError",
    "SmtpSettings",
    "build_packages",
    "cases_for",
    "cell_text",
    "deliver",
    "deliver_run_reports",
    "delivered_before",
    "digest_packages",
    "dq_details",
    "dq_lines",
    "dq_status_text",
    "due_digests",
    "enrich",
    "headline",
    "html_body",
    "mail_context",
    "note_quiet",
    "period_bounds",
    "record_outcomes",
    "report_cases",
    "safe_name",
    "send_outbox",
    "smtp_settings_from_env",
    "staff_directory",
    "text_body",
    "workbook_bytes",
    "write_private",
    "write_to_outbox",
]
