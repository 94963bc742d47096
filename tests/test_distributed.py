"""Fan-out per duty station: threads and a real Dask LocalCluster (2 workers) give the same
findings as the plain sequential verify; bank accounts are checked across payroll areas."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from prefect.testing.utilities import prefect_test_harness

from detectors.rules.cross_area import shared_across_areas
from flows.distributed import dask_flow, verify_areas, verify_partitioned
from paywatch.pipeline import verify_run
from paywatch.simulate import SimConfig, simulate_to_folder

SAMPLE = Path(__file__).resolve().parent.parent / "data_samples" / "gv-300"
KEY = ["pernr", "detector", "category", "severity", "wage_type", "for_period", "amount_cents", "expected_cents"]


@pytest.fixture(scope="module", autouse=True)
def harness():
    with prefect_test_harness(server_startup_timeout=180):
        yield


def _norm(f: pl.DataFrame) -> pl.DataFrame:
    return f.select(KEY).sort(KEY, nulls_last=True)


def test_partitioned_on_threads_and_dask_equals_sequential(tmp_path):
    runs = (SAMPLE / "runs.txt").read_text().split()[:4]  # OC1, SIM1, SIM2, SIM3: history matters
    seq_db, thr_db, dsk_db = tmp_path / "seq.duckdb", tmp_path / "thr.duckdb", tmp_path / "dask.duckdb"
    for r in runs[:-1]:
        for db in (seq_db, thr_db, dsk_db):
            assert verify_run(SAMPLE / r, db=db).exit_code == 0
    target = SAMPLE / runs[-1]
    seq = verify_run(target, db=seq_db).findings
    thr = verify_partitioned(str(target), str(thr_db))["findings"]
    dsk = dask_flow(verify_partitioned, n_workers=2)(str(target), str(dsk_db))["findings"]
    assert seq.height > 0
    assert _norm(thr).equals(_norm(seq))
    assert _norm(dsk).equals(_norm(seq))


def test_two_payroll_areas_and_accounts_shared_across_them(tmp_path):
    vi = tmp_path / "vi"
    simulate_to_folder(SimConfig(staff=150, months=1, start="202512", seed=31, payroll_area="VI", error_rate=0.0), vi)
    gv_run = SAMPLE / "GV-202512-SIM1"
    vi_run = vi / "VI-202512-SIM1"
    # copy a GV account onto a VI staff member (as if typed in by mistake or fraud)
    gv_bank = pl.read_csv(gv_run / "PA0009.csv", infer_schema=False)
    stolen = gv_bank["IBAN"][0]
    path = vi_run / "PA0009.csv"
    vi_bank = pl.read_csv(path, infer_schema=False)
    vi_bank = vi_bank.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(stolen)).otherwise(pl.col("IBAN"))
                                   .alias("IBAN"))
    vi_bank.write_csv(path)
    _refresh_manifest(vi_run)
    broken = tmp_path / "NY-202512-SIM1"  # a third area whose extract is unreadable
    shutil.copytree(vi_run, broken)
    (broken / "RT.csv").write_text("not,the,header\n", encoding="utf-8")
    folders = [str(gv_run), str(broken), str(vi_run)]
    out = dask_flow(verify_areas, n_workers=2)(folders, str(tmp_path / "dask" / "w.duckdb"))
    assert [r["exit_code"] for r in out["runs"]] == [0, 2, 0]  # read on a worker, refused by the writer
    assert list((tmp_path / "dask" / "quarantine").iterdir())  # kept with its reason, as `paywatch verify` does
    local = verify_areas(folders, str(tmp_path / "local" / "w.duckdb"))  # default: threads in this process
    for d, loc in zip(out["runs"], local["runs"]):
        assert (d["run_id"], d["exit_code"]) == (loc["run_id"], loc["exit_code"])
        assert (d["findings"] is None) == (loc["findings"] is None)
        if d["findings"] is not None:
            assert _norm(d["findings"]).equals(_norm(loc["findings"]))
    assert out["cross_area"].height and out["cross_area"].equals(local["cross_area"])
    cross = out["cross_area"]
    assert set(cross["payroll_area"]) == {"GV", "VI"}
    assert stolen not in " ".join(cross["iban_masked"]) and cross["iban_masked"][0].endswith(stolen[-4:])


def test_shared_across_areas_unit():
    def bank(pernr, iban):
        return pl.DataFrame({"pernr": [pernr], "valid_from": [date(2020, 1, 1)], "valid_to": [date(9999, 12, 31)],
                             "bank_country": ["CH"], "iban": [iban], "currency": ["CHF"]})
    got = shared_across_areas({"GV": bank("1", "CH9300762011623852957"), "VI": bank("2", "CH9300762011623852957"),
                               "NY": bank("3", "CH5604835012345678009")}, "202601")
    assert got["pernr"].to_list() == ["1", "2"] and got["payroll_area"].to_list() == ["GV", "VI"]


def _refresh_manifest(folder: Path) -> None:
    import hashlib
    import json

    m = json.loads((folder / "manifest.json").read_text())
    for name in m["files"]:
        data = (folder / name).read_bytes()
        m["files"][name] = {"rows": len(pl.read_csv(folder / name, infer_schema=False)),
                            "sha256": hashlib.sha256(data).hexdigest()}
    (folder / "manifest.json").write_text(json.dumps(m, indent=2))
