"""Sending by SMTP. Settings come from the environment, never from the repository:
PAYWATCH_SMTP_HOST (enables mail), PAYWATCH_SMTP_PORT (25; 587 with STARTTLS),
PAYWATCH_SMTP_USER, PAYWATCH_SMTP_PASSWORD, PAYWATCH_SMTP_FROM, PAYWATCH_SMTP_STARTTLS
(1/true/yes), PAYWATCH_SMTP_SSL, PAYWATCH_SMTP_TIMEOUT; or PAYWATCH_SMTP_BLOCK = the name of
a Prefect `EmailServerCredentials` block (prefect-email, imported only then). Without any of
these the outbox is the only channel (the embedded default).

`send_all` sends messages in rounds over one connection each, with exponential backoff.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage

from paywatch.delivery.mail import DEFAULT_SENDER
from paywatch.warehouse.db import utc_now

log = logging.getLogger(__name__)


class SmtpConfigError(ValueError):
    """SMTP settings present but unusable."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = DEFAULT_SENDER
    starttls: bool = False
    use_ssl: bool = False
    timeout: float = 30.0


def _flag(v: str | None) -> bool:
    return (v or "").strip().lower() in ("1", "true", "yes", "on")


def smtp_settings_from_env(env: dict | None = None) -> SmtpSettings | None:
    """SMTP settings from PAYWATCH_SMTP_* (or a Prefect block named by PAYWATCH_SMTP_BLOCK);
    None when mail is not configured (outbox only)."""
    env = os.environ if env is None else env
    host = env.get("PAYWATCH_SMTP_HOST", "").strip()
    timeout = env.get("PAYWATCH_SMTP_TIMEOUT", "30")
    try:
        timeout_s = float(timeout)
    except ValueError:
        raise SmtpConfigError(f"PAYWATCH_SMTP_TIMEOUT={timeout!r} is not a number") from None
    if host:
        starttls, use_ssl = _flag(env.get("PAYWATCH_SMTP_STARTTLS")), _flag(env.get("PAYWATCH_SMTP_SSL"))
        port_text = env.get("PAYWATCH_SMTP_PORT") or ("465" if use_ssl else "587" if starttls else "25")
        try:
            port = int(port_text)
        except ValueError:
            raise SmtpConfigError(f"PAYWATCH_SMTP_PORT={port_text!r} is not a port number") from None
        user = env.get("PAYWATCH_SMTP_USER") or None
        return SmtpSettings(host, port, user, env.get("PAYWATCH_SMTP_PASSWORD") or None,
                            env.get("PAYWATCH_SMTP_FROM") or user or DEFAULT_SENDER, starttls, use_ssl, timeout_s)
    if env.get("PAYWATCH_SMTP_BLOCK"):
        return _settings_from_block(env["PAYWATCH_SMTP_BLOCK"], env, timeout_s)
    return None


def _settings_from_block(name: str, env, timeout: float) -> SmtpSettings:
    """A Prefect `EmailServerCredentials` block (prefect-email), loaded only when named."""
    try:
        from prefect_email import EmailServerCredentials  # noqa: PLC0415 — optional dependency
    except ImportError:
        raise SmtpConfigError("PAYWATCH_SMTP_BLOCK is set but prefect-email is not installed") from None
    try:
        creds = EmailServerCredentials.load(name)
    except Exception as e:  # noqa: BLE001 — the block store says why
        raise SmtpConfigError(f"Prefect block {name!r} could not be loaded ({type(e).__name__})") from None
    kind = str(getattr(creds.smtp_type, "name", creds.smtp_type)).upper()
    password = creds.password.get_secret_value() if getattr(creds, "password", None) else None
    port = int(creds.smtp_port or {"SSL": 465, "STARTTLS": 587}.get(kind, 25))
    user = creds.username or None
    return SmtpSettings(str(creds.smtp_server), port, user, password,
                        env.get("PAYWATCH_SMTP_FROM") or user or DEFAULT_SENDER, kind == "STARTTLS", kind == "SSL",
                        timeout)


def _connect(s: SmtpSettings) -> smtplib.SMTP:
    if s.use_ssl:
        conn = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=ssl.create_default_context())
    else:
        conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        if s.starttls:
            conn.starttls(context=ssl.create_default_context())
    if s.user:
        conn.login(s.user, s.password or "")
    return conn


def _describe(e: BaseException) -> str:
    """Why a delivery failed: the error type and the server's words (no message content)."""
    text = " ".join(str(e).split())[:240]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _crlf(data: bytes) -> bytes:
    # smtplib sends bytes as they are: a file's bare LF would make one overlong SMTP line
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def send_all(pending: dict[str, tuple[EmailMessage | bytes, list[str]]], smtp: SmtpSettings, retries: int, backoff: float,
             sleep: Callable[[float], None], run_id: str) -> list[tuple[str, str, int, str | None, datetime]]:
    """Send each message ({key: (message or its bytes, recipients)}) in rounds over one connection each;
    a message still failing after 1 + retries attempts is a failure. Returns (key, 'sent' |
    'failed', attempts, note or error, when known) per message, the sent ones first."""
    pending = dict(pending)
    attempts = dict.fromkeys(pending, 0)
    errors: dict[str, str] = {}
    out: list[tuple[str, str, int, str | None, datetime]] = []
    total = 1 + max(int(retries), 0)
    for rnd in range(total):
        if rnd:
            sleep(backoff * 2 ** (rnd - 1))
        for k in pending:
            attempts[k] += 1
        try:
            conn = _connect(smtp)
            try:
                for key in list(pending):
                    msg, to = pending[key]
                    try:
                        if isinstance(msg, bytes):  # as kept in the outbox; SMTP wants CRLF line ends
                            refused = conn.sendmail(smtp.sender, list(to), _crlf(msg))
                        else:
                            refused = conn.send_message(msg, from_addr=smtp.sender, to_addrs=list(to))
                    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError,
                            smtplib.SMTPNotSupportedError) as e:
                        errors[key] = _describe(e)
                        continue
                    note = f"refused by the server for: {', '.join(sorted(refused))}" if refused else None
                    out.append((key, "sent", attempts[key], note, utc_now()))
                    del pending[key]
            finally:
                try:
                    conn.quit()
                except (OSError, smtplib.SMTPException):
                    conn.close()
        except (OSError, smtplib.SMTPException) as e:  # no connection, lost connection, login refused
            for key in pending:
                errors[key] = _describe(e)
        if not pending:
            break
        log.warning("run %s: SMTP attempt %d/%d failed for %d package(s): %s", run_id, rnd + 1, total, len(pending),
                    "; ".join(sorted(set(errors[k] for k in pending))))
    out += [(key, "failed", attempts[key], errors.get(key, "not sent"), utc_now()) for key in pending]
    return out
