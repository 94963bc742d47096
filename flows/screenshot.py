"""Screenshots of the real Prefect UI after verifying sample runs through the `verify-run` flow.

    uv run --frozen python flows/screenshot.py [--out docs/img] [--run GV-202512-SIM2]

Starts a Prefect server (UI on) on a free 127.0.0.1 port in a temporary PREFECT_HOME and
PAYWATCH_HOME, verifies the committed sample's runs up to `--run` through the flow against
it (so each flow run is named for its payroll run: GV-202512-SIM1, ...), then has headless
Chromium (Playwright driving Debian's /usr/bin/chromium; never `playwright install`) capture:

- `prefect-runs.png`      the flow runs list: one run per payroll run, named and tagged;
- `prefect-flow-run.png`  the last flow run: its stage log lines (counts and seconds);
- `prefect-artifact.png`  that run's summary artifact.

Not part of CI; the README shows the images it wrote.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data_samples" / "gv-300"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, body: dict | None = None):
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                 method="POST" if body is not None else "GET",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def _wait_healthy(api: str, server: subprocess.Popen) -> None:
    for _ in range(240):
        try:
            _get(f"{api}/health")
            return
        except OSError:
            if server.poll() is not None:
                sys.exit("the Prefect server stopped while starting")
            time.sleep(1)
    sys.exit("the Prefect server did not answer within four minutes")


def _shoot(shots: list[tuple[Path, str, str, int]]) -> None:
    """(png, url, text to wait for, page height) each, in one headless Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900}, device_scale_factor=1)
        for path, url, text, height in shots:
            page.set_viewport_size({"width": 1440, "height": height})
            page.goto(url, wait_until="networkidle", timeout=120_000)
            page.get_by_text(text).first.wait_for(timeout=60_000)
            page.wait_for_timeout(2_000)  # charts and relative times settle
            page.screenshot(path=str(path))
            print(f"wrote {path} ({url})")
        browser.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/img", help="folder for the PNG files")
    ap.add_argument("--run", default="GV-202512-SIM2", help="last sample run folder to verify")
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"headless Chromium not found at {CHROMIUM}: apt-get install -y chromium")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        port = _port()
        ui, api = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/api"
        env = os.environ | {"PREFECT_HOME": tmp, "PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                            "PREFECT_UI_API_URL": api, "PAYWATCH_HOME": str(Path(tmp) / "paywatch")}
        server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                   "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_healthy(api, server)
            runs = (SAMPLE / "runs.txt").read_text().split()
            upto = runs[: runs.index(args.run) + 1]
            code = ("from flows.verify import verify_run\n"
                    + "".join(f"verify_run({str(SAMPLE / r)!r}, {str(Path(tmp) / 'w.duckdb')!r})\n" for r in upto))
            subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            last = _get(f"{api}/flow_runs/filter", {"sort": "START_TIME_DESC", "limit": 1})[0]
            arts = _get(f"{api}/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [last["id"]]}}})
            summary = next(a for a in arts if (a.get("key") or "").startswith("summary-"))
            _shoot([
                (out / "prefect-runs.png", f"{ui}/runs", last["name"], 1000),
                # tall enough for the stage log lines under the task graph
                (out / "prefect-flow-run.png", f"{ui}/runs/flow-run/{last['id']}", "stage detect", 1900),
                (out / "prefect-artifact.png", f"{ui}/artifacts/artifact/{summary['id']}", last["name"], 900),
            ])
        finally:
            server.terminate()
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
