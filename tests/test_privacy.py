"""Personal data: nothing Paywatch generates carries an unmasked IBAN — reports, outbox,
logs, Prefect artifacts — and what it writes is readable by its owner only."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import stat
from pathlib import Path

import polars as pl
import pytest
from prefect.client.orchestration import get_client
from prefect.testing.utilities import prefect_test_harness

from flows.verify import pull_and_verify
from paywatch.privacy import mask_iban, mask_ibans_in

SAMPLE = Path(__file__).resolve().parent.parent / "data_samples" / "gv-300"
RUNS = (SAMPLE / "runs.txt").read_text().split()
INPUTS = ("landing", "archive", "quarantine")  # extract inputs as received: not outputs


def _sample_ibans() -> set[str]:
    out: set[str] = set()
    for run in RUNS:
        out |= set(pl.read_csv(SAMPLE / run / "PA0009.csv", infer_schema=False)["IBAN"].to_list())
    return out


def _names() -> set[str]:
    names = pl.read_csv(SAMPLE / RUNS[1] / "PA0001.csv", infer_schema=False)["ENAME"].unique().to_list()
    return {n for n in names if len(n) > 6}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("privacy")
    landing = root / "landing"
    landing.mkdir()
    for run in RUNS[:5]:
        shutil.copytree(SAMPLE / run, landing / run)
    records: list[str] = []

    class Grab(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    grab = Grab()
    logging.getLogger().addHandler(grab)
    logging.getLogger("prefect").addHandler(grab)
    with prefect_test_harness(server_startup_timeout=180):
        done = pull_and_verify(str(landing), str(root / "warehouse.duckdb"), settle_seconds=0)
        assert len(done) == 5

        async def artifacts():
            async with get_client() as client:
                return [str(a.data) for a in await client.read_artifacts()], [
                    str(fr.parameters) for fr in await client.read_flow_runs()]
        arts, params = asyncio.run(artifacts())
    logging.getLogger().removeHandler(grab)
    logging.getLogger("prefect").removeHandler(grab)
    return root, records, arts, params


def _outputs(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()
            and not any(part in INPUTS for part in p.relative_to(root).parts)
            and not p.name.startswith("warehouse.duckdb")]


def test_no_unmasked_iban_in_anything_generated(home):
    root, logs, arts, params = home
    ibans = _sample_ibans()
    files = _outputs(root)
    assert any(p.suffix == ".xlsx" for p in files) and any(p.name == "exceptions.csv" for p in files)
    for p in files:
        data = p.read_bytes()
        for iban in ibans:
            assert iban.encode() not in data, f"unmasked IBAN in {p.relative_to(root)}"
    blob = "\n".join(logs + arts + params)
    assert not any(iban in blob for iban in ibans)
    assert not any(n in "\n".join(logs + params) for n in _names()), "a staff name reached a log or a parameter"


def test_shared_account_findings_show_only_the_last_four(home):
    root, *_ = home
    text = "\n".join(p.read_text() for p in root.rglob("exceptions.csv"))
    masked = re.findall(r"\*{6,}[A-Z0-9]{4}", text)
    assert masked, "the sample has shared-account findings, shown masked"


def test_written_files_are_private(home):
    root, *_ = home
    for p in [root / "warehouse.duckdb", *(q for q in root.rglob("*") if not q.is_symlink())]:
        if any(part in ("landing",) for part in p.relative_to(root).parts) or p.name == "gx":
            continue
        mode = stat.S_IMODE(p.stat().st_mode)
        if "gx" in p.relative_to(root).parts:
            continue  # GX's own project files: no personal data
        assert mode & 0o077 == 0, f"{p.relative_to(root)} has mode {mode:o}"


def test_masking_helpers():
    assert mask_iban("CH9300762011623852957") == "*****************2957"
    assert mask_ibans_in("paid to CH9300762011623852957 today") == "paid to *****************2957 today"
