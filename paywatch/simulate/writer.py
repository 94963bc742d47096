"""Write simulated runs as extract folders (docs/extract-format.md), runs.txt and truth.csv."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import polars as pl

from paywatch.extract.schema import FILES, FORMAT_VERSION, STAGING_TABLES
from paywatch.paths import private_dir, write_private
from paywatch.simulate.engine import RunOutput

TRUTH_HEADER = "run_id,PERNR,error_type\n"


def _source_frame(file_name: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Staging-named, typed frame -> contract columns as text, in contract order."""
    exprs = []
    for col in FILES[file_name]:
        c = pl.col(col.staging)
        if col.kind == "date":
            e = c.dt.strftime("%Y%m%d")
        elif col.kind == "amount":
            cents = c.cast(pl.Int64)
            sign = pl.when(cents < 0).then(pl.lit("-")).otherwise(pl.lit(""))
            a = cents.abs()
            e = sign + (a // 100).cast(pl.String) + "." + (a % 100).cast(pl.String).str.zfill(2)
        elif col.name == "DEPENDENT":
            e = pl.when(c).then(pl.lit("X")).otherwise(pl.lit(None, dtype=pl.String))
        else:
            e = c.cast(pl.String)
        exprs.append(e.alias(col.name))
    return frame.select(exprs)


def write_run(out: RunOutput, root: Path) -> Path:
    """One run folder named after its run id; the manifest lists every file's checksum."""
    # names, salaries and bank accounts: owner-only folders (0700) and files (0600)
    private_dir(root)
    # a correction (a second version of the run) gets a folder of its own: the name carries no meaning
    folder = private_dir(root / (out.plan.run_id if out.version == 1 else f"{out.plan.run_id}.v{out.version}"))
    files = {}
    for file_name, table in STAGING_TABLES.items():
        frame = _source_frame(file_name, out.frames[table.removeprefix("stg_")])
        data = frame.write_csv(line_terminator="\n", quote_style="necessary", null_value="").encode("utf-8")
        write_private(folder / file_name, data)
        files[file_name] = {"rows": frame.height, "sha256": hashlib.sha256(data).hexdigest()}
    plan = out.plan
    manifest = {
        "format_version": FORMAT_VERSION,
        "run_id": plan.run_id,
        "payroll_area": plan.run_id.split("-")[0],
        "period": plan.period,
        "run_type": plan.run_type,
        "pay_date": plan.pay_date.strftime("%Y%m%d"),
        "extracted_at": plan.extracted_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": files,
    }
    write_private(folder / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    return folder


def write_truth(rows: list[tuple[str, str, str]], path: Path) -> None:
    body = "".join(f"{r},{p},{k}\n" for r, p, k in rows)
    write_private(path, (TRUTH_HEADER + body).encode("utf-8"))
