"""Small valid run folders for tests: write_run() writes all ten CSVs and a correct manifest,
so a test can corrupt exactly one thing.

The defaults follow docs/extract-format.md: staff 10000001 is worked example 1 (P-3, Geneva,
dependent spouse and two children), staff 10000002 a part-time G with overtime.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

DEFAULT_FILES: dict[str, str] = {
    "PA0000.csv": (
        "PERNR,BEGDA,ENDDA,MASSN,MASSG,STAT2\n"
        "10000001,20200101,99991231,01,,3\n"
        "10000002,20220301,99991231,01,NEW,3\n"
    ),
    "PA0001.csv": (
        "PERNR,BEGDA,ENDDA,ENAME,WERKS,PERSG,ORGEH,ABKRS,KOSTL\n"
        '10000001,20200101,99991231,"Dupont, Marie",GVA,P,OHCHR,GV,CC100\n'
        "10000002,20220301,99991231,Zhāng 张伟,GVA,G,UNCTAD,GV,\n"
    ),
    "PA0008.csv": (
        "PERNR,BEGDA,ENDDA,TRFGR,TRFST,BSGRD\n"
        "10000001,20200101,99991231,P-3,05,100\n"
        "10000002,20220301,99991231,G-4,03,50\n"
    ),
    "PA0009.csv": (
        "PERNR,BEGDA,ENDDA,BANKS,IBAN,WAERS\n"
        "10000001,20200101,99991231,CH,CH9300762011623852957,USD\n"
        "10000002,20220301,99991231,CH,CH5604835012345678009,CHF\n"
    ),
    "PA0021.csv": (
        "PERNR,OBJPS,FAMSA,FGBDT,BEGDA,ENDDA,DEPENDENT\n"
        "10000001,01,1,19850412,20200101,99991231,X\n"
        "10000001,02,2,20150601,20200101,99991231,X\n"
        "10000001,03,2,20180911,20200101,99991231,X\n"
        "10000002,01,1,19800101,20220301,99991231,\n"
    ),
    "RT.csv": (
        "PERNR,SEQNR,FPPER,INPER,LGART,BETRG,WAERS,ANZHL\n"
        "10000001,00001,202503,202503,1000,6666.67,USD,\n"
        "10000001,00001,202503,202503,1010,5446.67,USD,\n"
        "10000001,00001,202503,202503,1100,400.00,USD,\n"
        "10000001,00001,202503,202503,1110,525.00,USD,\n"
        "10000001,00001,202503,202503,3000,-987.50,USD,\n"
        "10000001,00001,202503,202503,3100,-484.53,USD,\n"
        "10000001,00001,202503,202503,/101,13038.34,USD,\n"
        "10000001,00001,202503,202503,/550,11566.31,USD,\n"
        "10000001,00001,202503,202503,/560,11566.31,USD,\n"
        "10000002,00002,202503,202503,1000,2083.42,CHF,\n"
        "10000002,00002,202503,202503,1400,270.38,CHF,7.5\n"
        "10000002,00002,202502,202503,1000,-12.5,CHF,\n"
        "10000002,00002,202503,202503,/101,2341.3,CHF,\n"
        "10000002,00002,202503,202503,/550,2341.3,CHF,\n"
        "10000002,00002,202503,202503,/560,2341.3,CHF,\n"
    ),
    "T510.csv": (
        "TRFGR,TRFST,BEGDA,ENDDA,ANNUAL_NET,ANNUAL_PR,WAERS\n"
        "P-3,05,20250101,99991231,80000.00,150000.00,USD\n"
        "G-4,03,20250101,99991231,50002,91003.00,CHF\n"
    ),
    "T7UNPA.csv": (
        "WERKS,BEGDA,ENDDA,MULTIPLIER\n"
        "GVA,20250101,99991231,81.7\n"
        "NBO,20250101,99991231,100\n"
    ),
    "T512W.csv": (
        "LGART,LGTXT,CLASS,RUN_TYPES,OWNER\n"
        "1000,net base salary,EARNING,REGULAR,HR\n"
        "1010,post adjustment,EARNING,REGULAR,HR\n"
        "1100,spouse allowance,EARNING,REGULAR,HR\n"
        "1110,child allowance,EARNING,REGULAR,HR\n"
        "1400,overtime,EARNING,REGULAR,HR\n"
        "1500,special post allowance,EARNING,REGULAR|OFFCYCLE,HR\n"
        "2000,salary advance,EARNING,OFFCYCLE,FINANCE\n"
        "3000,pension contribution,DEDUCTION,REGULAR,HR\n"
        "3100,health insurance,DEDUCTION,REGULAR,HR\n"
        "3200,advance recovery,DEDUCTION,REGULAR,FINANCE\n"
        "3300,other deductions,DEDUCTION,REGULAR|OFFCYCLE,FINANCE\n"
        "/101,total gross,TOTAL,REGULAR|OFFCYCLE,FINANCE\n"
        "/550,statutory net,TOTAL,REGULAR|OFFCYCLE,FINANCE\n"
        "/560,amount paid,TOTAL,REGULAR|OFFCYCLE,FINANCE\n"
    ),
    "T7UNRATE.csv": (
        "KEY,VALUE,BEGDA,ENDDA\n"
        "PENSION_STAFF_RATE,0.079,20250101,99991231\n"
        "SPOUSE_RATE,0.06,20250101,99991231\n"
        "CHILD_ANNUAL_USD,3150.00,20250101,99991231\n"
        "CHILD_ANNUAL_CHF,2929.00,20250101,99991231\n"
        "CHILD_AGE_LIMIT,18,20250101,99991231\n"
        "HEALTH_RATE,0.04,20250101,99991231\n"
    ),
}

DEFAULT_MANIFEST = {
    "format_version": "1.0",
    "run_id": "GV-202503-SIM1",
    "payroll_area": "GV",
    "period": "202503",
    "run_type": "SIM1",
    "pay_date": "20250325",
    "extracted_at": "2025-03-10T06:00:00Z",
}

DELETE = object()  # a manifest_overrides value that removes the key


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file (strict dialect)."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, strict=True))
    return rows[0], rows[1:]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """A CSV as a correct extract writer would write it (LF, minimal quoting)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *rows])
    path.write_bytes(buf.getvalue().encode("utf-8"))


def count_records(data: bytes) -> int:
    """Data records of a CSV as a correct writer would count them (header excluded)."""
    text = data.decode("utf-8", errors="replace").removeprefix("\ufeff")
    try:
        n = sum(1 for _ in csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error:
        n = len(text.splitlines())
    return max(n - 1, 0)


def write_run(
    folder: Path,
    files: dict[str, str | bytes | None] | None = None,
    manifest_overrides: dict | None = None,
) -> Path:
    """Write a run folder: the default CSVs, replaced by `files` (None: file not written),
    and a manifest with the right rows and sha256, then `manifest_overrides` on top."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    contents = {**DEFAULT_FILES, **(files or {})}
    entries = {}
    for name, content in contents.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        if data is None:
            data = DEFAULT_FILES[name].encode("utf-8")  # listed in the manifest, not written
        else:
            (folder / name).write_bytes(data)
        entries[name] = {"rows": count_records(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest = {**DEFAULT_MANIFEST, "files": entries}
    for key, value in (manifest_overrides or {}).items():
        if value is DELETE:
            manifest.pop(key, None)
        else:
            manifest[key] = value
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return folder


def update_manifest(folder: Path, change) -> None:
    """Apply change(manifest_dict) to folder/manifest.json in place."""
    path = Path(folder) / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    change(manifest)
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
