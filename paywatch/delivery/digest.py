"""The daily digest (routing.toml `[mail] empty = "digest"`): a recipient with nothing to act
on in a run gets no mail for it; the run is noted in `outbox/digest/<recipient>/pending.json`
instead, and the notes of earlier days go out as one message — "runs checked on <day> with
nothing for you" — with the first delivery made on a later day (the next run verified, or
`paywatch verify` of any run). The digest is delivered like any package, under that run's
outbox folder, as recipient `digest-<recipient>` (no workbook: there is nothing to list).

Notes hold run ids, days, data-quality words and counts: no staff, no amounts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import date, datetime, timezone
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from paywatch.delivery.package import FORMAT_VERSION, Package
from paywatch.delivery.text import safe_name
from paywatch.paths import private_dir, write_private
from paywatch.routing import Recipient, Routing

_ENV = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), undefined=StrictUndefined,
                   autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
                   keep_trailing_newline=True)


def _pending_path(outbox: Path, key: str) -> Path:
    return Path(outbox) / "digest" / safe_name(key) / "pending.json"


def _load(path: Path) -> list[dict]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []


def _save(path: Path, entries: list[dict]) -> None:
    private_dir(path.parent.parent)
    private_dir(path.parent)
    write_private(path, (json.dumps(entries, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))


def note_quiet(outbox: Path, run_id: str, dq_status: str, quiet: list, today: date) -> None:
    """Note the run for every recipient that had nothing to act on in it (once per run)."""
    for recipient, counts in quiet:
        path = _pending_path(outbox, recipient.key)
        entries = _load(path)
        if any(e["run_id"] == run_id for e in entries):
            continue  # noted already (a repeated verify)
        entries.append({"run_id": run_id, "day": today.isoformat(), "dq": dq_status,
                        "in_copy": int(counts.get("cases", 0)) - int(counts.get("act", 0)),
                        "resolved": int(counts.get("part_resolved", 0))})
        _save(path, entries)


def due_digests(run_id: str, outbox: Path, routing: Routing, out_dir: Path, today: date) -> list[Package]:
    """One digest package per recipient with notes of days before `today` (those notes are
    taken out of its pending file)."""
    packages = []
    for recipient in routing.recipients:
        path = _pending_path(outbox, recipient.key)
        entries = _load(path)
        due = [e for e in entries if e["day"] < today.isoformat()]
        if not due:
            continue
        packages.append(_digest(run_id, recipient, due, out_dir))
        _save(path, [e for e in entries if e["day"] >= today.isoformat()])
    return packages


def digest_packages(con, run_id: str, quiet: list, outbox: Path, out_dir: Path, routing: Routing,
                    dq_status: str, today: date | None = None) -> list[Package]:
    """Note this run's quiet recipients, then the digests due (days before today)."""
    today = today or datetime.now(timezone.utc).date()
    note_quiet(outbox, run_id, dq_status, quiet, today)
    return due_digests(run_id, outbox, routing, out_dir, today)


def _digest(run_id: str, recipient: Recipient, entries: list[dict], out_dir: Path) -> Package:
    days = sorted({e["day"] for e in entries})
    span = days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"
    subject = (f"Paywatch digest {span}: {len(entries)} run(s) checked, nothing for you to act on — "
               f"{recipient.name}")
    ctx = {"subject": subject, "first_line": f"{len(entries)} payroll run(s) checked on {span} had nothing for you "
           "to act on.", "recipient_name": recipient.name, "scope": recipient.scope_text,
           "runs": sorted(entries, key=lambda e: (e["day"], e["run_id"]))}
    who = replace(recipient, key=f"digest-{recipient.key}")
    folder = private_dir(private_dir(Path(out_dir)) / safe_name(who.key))
    html = _ENV.get_template("digest.html.j2").render(**ctx)
    text = _ENV.get_template("digest.txt.j2").render(**ctx)
    sha = hashlib.sha256(json.dumps({"format": FORMAT_VERSION, "digest": who.key, "to": list(who.to),
                                     "entries": ctx["runs"]}, sort_keys=True).encode()).hexdigest()
    pkg = Package(run_id=run_id, recipient=who, meta={"run_id": run_id, "digest": True}, subject=subject, html=html,
                  text=text, workbook=folder / "no-workbook.xlsx", html_path=folder / "body.html",
                  counts={"exceptions": 0, "runs": len(entries)}, content_sha256=sha)
    write_private(pkg.html_path, html.encode("utf-8"))
    return pkg
