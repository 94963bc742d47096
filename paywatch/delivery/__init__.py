"""Reports upstream: one package per recipient and run (Excel workbook + HTML e-mail),
written to the outbox first, then sent by SMTP when configured.

- text: report-safe texts (IBANs masked, no formulas), data-quality lines
- workbook: the .xlsx (cover sheet, one sheet per category)
- mail: the HTML / text bodies and the MIME message
- package: routing the run's exceptions into packages (content hash)
- smtp: SMTP settings from the environment / a Prefect block, sending with backoff
- outbox: the outbox, `deliver`, `send_outbox`, DELIVERY_FAILED.txt, the delivery log
- stage: `deliver_run_reports`, the whole step of a verified run (never raises)

The names below are the package's interface; import them from `paywatch.delivery`.
"""

from paywatch.paths import write_private
from paywatch.delivery.mail import DEFAULT_SENDER, TOP_N, html_body, text_body
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
from paywatch.delivery.text import cell_text, dq_details, dq_status_text, safe_name
from paywatch.delivery.workbook import COVER_SHEET, SHEET_COLUMNS, workbook_bytes
from paywatch.warehouse.deliveries import delivered_before

__all__ = [
    "COVER_SHEET",
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
    "cell_text",
    "deliver",
    "deliver_run_reports",
    "delivered_before",
    "dq_details",
    "dq_status_text",
    "enrich",
    "html_body",
    "period_bounds",
    "record_outcomes",
    "safe_name",
    "send_outbox",
    "smtp_settings_from_env",
    "staff_directory",
    "text_body",
    "workbook_bytes",
    "write_private",
    "write_to_outbox",
]
