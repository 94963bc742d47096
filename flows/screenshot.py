"""Screenshot of the Prefect UI showing a completed verify run with its artifacts.

    apt-get install -y chromium          # Debian's package, once
    uv run python flows/screenshot.py [--out prefect-ui.png]

Starts a Prefect server (UI on) on a free 127.0.0.1 port in a temporary PREFECT_HOME,
verifies one run of the committed sample through the `verify-run` flow against it, then
has headless Chromium capture the flow run's artifacts page. Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data_samples" / "gv-300"


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="prefect-ui.png")
    ap.add_argument("--run", default="GV-202512-SIM2", help="sample run folder to verify")
    args = ap.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        sys.exit("headless Chromium not found: apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as tmp:
        port = _port()
        api = f"http://127.0.0.1:{port}/api"
        env = os.environ | {"PREFECT_HOME": tmp, "PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                            "PAYWATCH_HOME": str(Path(tmp) / "paywatch")}
        server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                   "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(240):
                try:
                    _get(f"{api}/health")
                    break
                except OSError:
                    time.sleep(1)
            runs = (SAMPLE / "runs.txt").read_text().split()
            upto = runs[: runs.index(args.run) + 1]
            code = ("from flows.verify import verify_run\n"
                    + "".join(f"verify_run({str(SAMPLE / r)!r}, {str(Path(tmp) / 'w.duckdb')!r})\n" for r in upto))
            subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True)
            flow_runs = _get(f"{api}/flow_runs/filter", {"sort": "START_TIME_DESC", "limit": 1})
            run_id = flow_runs[0]["id"]
            arts = _get(f"{api}/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id]}}})
            summary = next(a for a in arts if (a.get("key") or "").startswith("summary-"))
            out = Path(args.out).resolve()
            shots = {out: f"http://127.0.0.1:{port}/runs/flow-run/{run_id}",
                     out.with_name(out.stem + "-artifact.png"): f"http://127.0.0.1:{port}/artifacts/artifact/{summary['id']}"}
            for path, url in shots.items():
                subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                                "--disable-sync", f"--user-data-dir={Path(tmp) / 'chrome'}", "--window-size=1400,1000",
                                "--virtual-time-budget=15000", f"--screenshot={path}", url],
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=180)
                print(f"wrote {path} ({url})")
        finally:
            server.terminate()
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
