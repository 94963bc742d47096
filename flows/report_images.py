"""Pictures of what recipients get, for the README: the HR workbook as printed and the HR mail.

    uv run --frozen python flows/report_images.py [--out docs/img] [--run GV-202601-SIM2]

Verifies the committed sample's runs up to `--run` with `paywatch verify` in a temporary
PAYWATCH_HOME (no SMTP: every mail lands in the outbox as a file), then

- prints the HR workbook of that run to PDF with LibreOffice (`soffice --headless`) and turns
  its first pages into `workbook-page-N.png` with poppler's `pdftoppm`;
- renders the HR mail's HTML part in headless Chromium (Playwright driving Debian's
  /usr/bin/chromium, network off) as `mail.png`.

Not part of CI (it needs LibreOffice and poppler); the README shows the images it wrote.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data_samples" / "gv-300"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def _verify_until(run: str, home: Path) -> None:
    env = {**os.environ, "PAYWATCH_HOME": str(home)}
    env.pop("PAYWATCH_SMTP_HOST", None)
    for name in (SAMPLE / "runs.txt").read_text().split():
        done = subprocess.run([sys.executable, "-m", "paywatch.cli", "verify", str(SAMPLE / name)], env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"verify {name} failed: {done.stderr.strip()}")
        if name == run:
            return
    raise SystemExit(f"{run} is not a run of the sample")


def _hr_folder(home: Path, run: str) -> Path:
    folders = sorted(p for p in (home / "outbox" / run).iterdir() if p.is_dir() and "hr" in p.name.lower())
    if not folders:
        raise SystemExit(f"no HR mail in {home / 'outbox' / run}")
    return folders[0]


def workbook_pages(xlsx: Path, out: Path, pages: int, work: Path) -> list[Path]:
    subprocess.run(["soffice", "--headless", "--convert-to", "pdf", "--outdir", str(work), str(xlsx)],
                   check=True, capture_output=True)
    pdf = work / (xlsx.stem + ".pdf")
    subprocess.run(["pdftoppm", "-png", "-r", "70", "-f", "1", "-l", str(pages), str(pdf), str(work / "page")],
                   check=True)
    written = []
    for i, png in enumerate(sorted(work.glob("page-*.png")), start=1):
        target = out / f"workbook-page-{i}.png"
        target.write_bytes(png.read_bytes())
        written.append(target)
    return written


def mail_image(eml: Path, out: Path, work: Path) -> Path:
    from playwright.sync_api import sync_playwright

    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    page_file = work / "mail.html"
    head = (f"<p style='font:13px sans-serif;color:#555'>Subject: {msg['Subject']}</p>")
    page_file.write_text(head + msg.get_body(("html",)).get_content(), encoding="utf-8")
    target = out / "mail.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(offline=True, viewport={"width": 1000, "height": 900})
        page = context.new_page()
        page.goto(page_file.as_uri())
        page.screenshot(path=str(target), full_page=False)
        browser.close()
    return target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    ap.add_argument("--run", default="GV-202601-SIM2")
    ap.add_argument("--pages", type=int, default=2)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        home, work = Path(tmp) / "home", Path(tmp) / "work"
        work.mkdir()
        _verify_until(args.run, home)
        hr = _hr_folder(home, args.run)
        xlsx = next(hr.glob("*.xlsx"))
        for p in workbook_pages(xlsx, args.out, args.pages, work):
            print(f"wrote {p}")
        print(f"wrote {mail_image(hr / 'message.eml', args.out, work)}")


if __name__ == "__main__":
    main()
