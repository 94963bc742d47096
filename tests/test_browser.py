"""Every kind of page Paywatch writes, opened in headless Chromium with the network off.

One verified run (GV-202601-FINAL of the committed sample, no SMTP: the mail goes to the
outbox) and the close of its month give: the HTML mail body (from the outbox's message.eml,
exactly what would be mailed), the Finance data-quality page, the Data Docs index and a
validation page, and the close report. Each page must show its content with no request
leaving the machine (the context is offline and every non-file: request is aborted and
recorded), no failed request (a missing local asset), no console or script error, no
image or web font that did not load. Screenshots are kept in tests/artifacts/browser/
(git-ignored); their paths are printed.

Chromium is Debian's /usr/bin/chromium (CI installs it in .ci/run); without it the test is
skipped, except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import email
import os
import subprocess
import sys
from dataclasses import dataclass, field
from email import policy
from pathlib import Path

import pytest

from paywatch.dq import catalog

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data_samples" / "gv-300"
RUN = "GV-202601-FINAL"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "artifacts" / "browser"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium before the tests")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium); CI installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield b
        finally:
            b.close()


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYWATCH_SMTP_")}  # mail to the outbox
    p = subprocess.run([sys.executable, "-m", "paywatch.cli", *args], capture_output=True, text=True,
                       timeout=900, env=env)
    assert p.returncode == 0, (args, p.stdout[-2000:], p.stderr[-2000:])
    return p


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    """A verified run and the close of its month, written as a user's commands write them."""
    home = tmp_path_factory.mktemp("browser") / "home"
    db = home / "warehouse.duckdb"
    _cli("verify", str(SAMPLE / RUN), "--db", str(db))
    _cli("close", RUN.split("-")[1], "--db", str(db))
    report = home / "reports" / RUN
    # the mail as it would leave: the HTML alternative of the outbox's message.eml
    eml = sorted((home / "outbox" / RUN).glob("*/message.eml"))
    assert eml, list((home / "outbox").rglob("*"))
    msg = email.message_from_bytes(eml[0].read_bytes(), policy=policy.default)
    body = msg.get_body(preferencelist=("html",))
    assert body is not None, f"{eml[0]}: no HTML part"
    text = body.get_content()
    parts = home / "mail-parts"
    for i, part in enumerate(msg.walk()):  # inline images (cid:) as a mail reader resolves them
        cid = (part.get("Content-ID") or "").strip("<>")
        if cid and not part.is_multipart():
            parts.mkdir(exist_ok=True)
            (parts / f"part{i}").write_bytes(part.get_payload(decode=True))
            text = text.replace(f"cid:{cid}", f"mail-parts/part{i}")
    mail = home / "mail-body.html"
    mail.write_text(text, encoding="utf-8")
    staff = sorted((report / "data_docs" / "validations").glob("paywatch_staff/**/*.html"))
    assert staff, "a validation page of the staff suite"
    close = sorted((home / "reports").glob("*-close/monthly_summary.html"))
    assert close, list((home / "reports").iterdir())
    return {"mail": mail, "finance": report / "finance_dq.html", "docs_index": report / "data_docs" / "index.html",
            "docs_validation": staff[0], "close": close[0]}


@dataclass
class Opened:
    text: str
    blocked: list[str] = field(default_factory=list)   # requests that tried to leave the machine
    failed: list[str] = field(default_factory=list)    # requests that failed (e.g. a missing local file)
    errors: list[str] = field(default_factory=list)    # console errors and uncaught script errors
    broken_images: list[str] = field(default_factory=list)
    broken_fonts: list[str] = field(default_factory=list)
    fonts: list[str] = field(default_factory=list)
    shot: Path | None = None

    def problems(self) -> list[str]:
        return ([f"blocked {u}" for u in self.blocked] + [f"failed {u}" for u in self.failed]
                + [f"error {e}" for e in self.errors] + [f"image {i}" for i in self.broken_images]
                + [f"font {f}" for f in self.broken_fonts])


_ASSETS_JS = """async () => {
  await document.fonts.ready;
  const fonts = [...document.fonts];
  return {
    images: [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src),
    brokenFonts: fonts.filter(f => f.status === 'error').map(f => f.family),
    fonts: fonts.filter(f => f.status === 'loaded').map(f => f.family),
  };
}"""


def open_offline(browser, path: Path, name: str, then=None) -> Opened:
    """`path` in a fresh offline context; `then(page)` may act on the page (e.g. follow a link)."""
    context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
    blocked: list[str] = []

    def route(r):
        if r.request.url.startswith("file:"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    out = Opened(text="", blocked=blocked)
    page.on("console", lambda m: out.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: out.errors.append(str(e)))
    page.on("requestfailed", lambda r: out.failed.append(f"{r.url} ({r.failure})"))
    try:
        page.goto(path.resolve().as_uri(), wait_until="load")
        if then is not None:
            then(page)
        page.wait_for_load_state("load")
        assets = page.evaluate(_ASSETS_JS)
        out.broken_images, out.broken_fonts, out.fonts = assets["images"], assets["brokenFonts"], assets["fonts"]
        out.text = page.inner_text("body")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        out.shot = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(out.shot), full_page=True)
        print(f"screenshot: {out.shot}")
    finally:
        context.close()
    return out


def test_mail_body_renders_offline(browser, pages):
    o = open_offline(browser, pages["mail"], "mail")
    assert o.problems() == []
    assert RUN in o.text and "Data quality" in o.text, o.text[:500]


def test_finance_data_quality_page_renders_offline_and_links_data_docs(browser, pages):
    o = open_offline(browser, pages["finance"], "finance_dq")
    assert o.problems() == []
    assert f"Payroll data quality — {RUN}" in o.text and "checks passed" in o.text, o.text[:500]
    assert "Data asset: None" in o.text, "GX's words explained beside the link"

    def follow(page):  # GX's own pages: one click away, locally
        page.get_by_role("link", name="Technical detail of every check").click()
        page.wait_for_url("**/data_docs/index.html")

    o = open_offline(browser, pages["finance"], "finance_dq-to-data_docs", then=follow)
    assert o.problems() == []
    assert "Validation Results" in o.text and "Data-quality report for Finance" in o.text


def test_data_docs_index_renders_offline_with_vendored_scripts_and_fonts(browser, pages):
    o = open_offline(browser, pages["docs_index"], "data_docs-index")
    assert o.problems() == []
    # the table is drawn by bootstrap-table (vendored jQuery + plugin): rows prove the scripts ran
    n = len(catalog.load_suites(catalog.SHIPPED_SUITES))
    assert f"of {n} rows" in o.text and RUN in o.text, o.text[:800]
    assert any("Font Awesome" in f for f in o.fonts), o.fonts


def test_data_docs_validation_page_renders_offline(browser, pages):
    o = open_offline(browser, pages["docs_validation"], "data_docs-validation-staff")
    assert o.problems() == []
    assert "staff_active_have_pay" in o.text and "Expectation Validation Result" in o.text, o.text[:800]
    assert "Data-quality report for Finance" in o.text


def test_close_report_renders_offline(browser, pages):
    o = open_offline(browser, pages["close"], "close-monthly_summary")
    assert o.problems() == []
    assert "GV" in o.text and ("2026-01" in o.text or "202601" in o.text), o.text[:500]
