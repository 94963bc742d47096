"""paywatch.extract.reader: every ▣ format rule, with the exact file, line and column."""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from extract_fixture import DEFAULT_FILES, DELETE, count_records, update_manifest, write_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paywatch.extract import schema
from paywatch.extract.model import ExtractError
from paywatch.extract.reader import parse_manifest, read_manifest, read_run

RT_HEADER = "PERNR,SEQNR,FPPER,INPER,LGART,BETRG,WAERS,ANZHL\n"
PA0001_HEADER = "PERNR,BEGDA,ENDDA,ENAME,WERKS,PERSG,ORGEH,ABKRS,KOSTL\n"


def rt(*lines: str) -> str:
    return RT_HEADER + "".join(line + "\n" for line in lines)


def rt_line(lgart="1000", betrg="100.00", fpper="202503", inper="202503", waers="USD", anzhl=""):
    return f"10000001,00001,{fpper},{inper},{lgart},{betrg},{waers},{anzhl}"


def fails(folder: Path) -> ExtractError:
    with pytest.raises(ExtractError) as info:
        read_run(folder)
    return info.value


def where(err: ExtractError) -> tuple:
    return err.file, err.line, err.column


# --------------------------------------------------------------------------- happy path


def test_default_run_types_and_values(tmp_path):
    ex = read_run(write_run(tmp_path))
    m = ex.manifest
    assert (m.run_id, m.payroll_area, m.period) == ("GV-202503-SIM1", "GV", "202503")
    assert m.run_type == "SIM1"
    assert m.pay_date == date(2025, 3, 25)
    assert m.extracted_at == datetime(2025, 3, 10, 6, 0, tzinfo=timezone.utc)
    assert set(m.files) == set(schema.FILE_NAMES)
    assert ex.manifest_bytes == (tmp_path / "manifest.json").read_bytes()
    assert list(ex.frames) == list(schema.FILE_NAMES)

    expected_kind = {
        "id": pl.String, "code": pl.String, "text": pl.String, "period": pl.String,
        "seqnr": pl.String, "date": pl.Date, "amount": pl.Int64, "integer": pl.Int64,
    }
    for name, columns in schema.FILES.items():
        frame = ex.frames[name]
        assert frame.columns == [c.name for c in columns]
        for c in columns:
            if c.kind == "number":
                assert isinstance(frame.schema[c.name], pl.Decimal)
            else:
                assert frame.schema[c.name] == expected_kind[c.kind], (name, c.name)

    rt_frame = ex.frames["RT.csv"]
    assert rt_frame.height == 15
    assert rt_frame["BETRG"].to_list()[:9] == [
        666667, 544667, 40000, 52500, -98750, -48453, 1303834, 1156631, 1156631
    ]
    assert rt_frame["BETRG"][11] == -1250  # "-12.5"
    assert rt_frame["BETRG"][12] == 234130  # "2341.3"
    assert rt_frame["SEQNR"][0] == "00001"  # opaque text, leading zeros kept
    assert rt_frame["ANZHL"].dtype == pl.Decimal(38, 1)
    assert rt_frame["ANZHL"].to_list()[10] == Decimal("7.5")
    assert rt_frame["ANZHL"].null_count() == 14

    t510 = ex.frames["T510.csv"]
    assert t510["ANNUAL_NET"].to_list() == [8_000_000, 5_000_200]  # "50002" -> cents
    rates = ex.frames["T7UNRATE.csv"]
    assert rates["VALUE"].dtype == pl.Decimal(38, 3)
    assert rates["VALUE"].to_list()[0] == Decimal("0.079")
    pa = ex.frames["T7UNPA.csv"]
    assert pa["MULTIPLIER"].to_list() == [Decimal("81.7"), Decimal("100")]

    pa0000 = ex.frames["PA0000.csv"]
    assert pa0000["MASSG"].to_list() == [None, "NEW"]
    assert pa0000["ENDDA"][0] == date(9999, 12, 31)
    assert ex.frames["PA0008.csv"]["BSGRD"].to_list() == [100, 50]
    assert ex.frames["PA0021.csv"]["DEPENDENT"].to_list() == ["X", "X", "X", None]
    assert ex.frames["PA0001.csv"]["ENAME"].to_list() == ["Dupont, Marie", "Zhāng 张伟"]


def test_dialect_variants_all_accepted(tmp_path):
    # BOM, CRLF, no final newline, shuffled and extra columns, quoted comma / doubled quote /
    # line break, quoted empty = null, non-Latin names.
    pa0001 = (
        "\ufeffEXTRA,KOSTL,ENAME,PERNR,BEGDA,ENDDA,WERKS,PERSG,ORGEH,ABKRS,NOTE\r\n"
        'x,CC1,"Dupont, Marie",10000001,20200101,99991231,GVA,P,OHCHR,GV,\r\n'
        'y,"","O""Brien\r\nSecond line",10000002,20220301,99991231,GVA,G,ECE,GV,"a,b"\r\n'
        "z,,Ольга Иванова,10000003,20230101,20251231,NBO,D,OCHA,GV,n\r\n"
        "w,CC2,Zhāng 张伟,10000004,20240229,99991231,GVA,P,OHCHR,GV,"
    )
    ex = read_run(write_run(tmp_path, {"PA0001.csv": pa0001.encode("utf-8")}))
    frame = ex.frames["PA0001.csv"]
    assert frame.columns == [c.name for c in schema.FILES["PA0001.csv"]]
    assert frame["ENAME"].to_list() == [
        "Dupont, Marie", 'O"Brien\r\nSecond line', "Ольга Иванова", "Zhāng 张伟"
    ]
    assert frame["KOSTL"].to_list() == ["CC1", None, None, "CC2"]
    assert frame["PERNR"].to_list() == ["10000001", "10000002", "10000003", "10000004"]
    assert frame["BEGDA"][3] == date(2024, 2, 29)


def test_quoted_values_single_line_records(tmp_path):
    # Quotes without line breaks take the fast parser: same values.
    pa0001 = PA0001_HEADER + (
        '"10000001","20200101","99991231","Dupont, ""Marie""","GVA","P","OHCHR","GV",""\n'
    )
    ex = read_run(write_run(tmp_path, {"PA0001.csv": pa0001}))
    frame = ex.frames["PA0001.csv"]
    assert frame.row(0) == (
        "10000001", date(2020, 1, 1), date(9999, 12, 31), 'Dupont, "Marie"',
        "GVA", "P", "OHCHR", "GV", None,
    )


def test_amount_and_number_parsing_is_exact(tmp_path):
    text = rt(
        rt_line(betrg="-12.5", anzhl="0.000000000000000000000000000001"),
        rt_line(betrg="7", anzhl="12345678.5"),
        rt_line(betrg="0.05", anzhl="-0.10"),
        rt_line(betrg="-0.5", anzhl="007"),
        rt_line(betrg="9999999999999999.99", anzhl=""),
        rt_line(betrg="-0", anzhl=""),
    )
    frame = read_run(write_run(tmp_path, {"RT.csv": text})).frames["RT.csv"]
    assert frame["BETRG"].to_list() == [-1250, 700, 5, -50, 999999999999999999, 0]
    assert frame["ANZHL"].dtype == pl.Decimal(38, 30)
    assert frame["ANZHL"].to_list() == [
        Decimal("1E-30"), Decimal("12345678.5"), Decimal("-0.1"), Decimal(7), None, None
    ]


def test_offcycle_run_may_have_no_results(tmp_path):
    ex = read_run(write_run(tmp_path, {"RT.csv": RT_HEADER}, {"run_type": "OFFCYCLE"}))
    assert ex.frames["RT.csv"].height == 0
    assert ex.frames["RT.csv"]["BETRG"].dtype == pl.Int64


def test_header_only_master_file_is_fine(tmp_path):
    header_only = "PERNR,OBJPS,FAMSA,FGBDT,BEGDA,ENDDA,DEPENDENT"  # and no final newline
    ex = read_run(write_run(tmp_path, {"PA0021.csv": header_only}))
    assert ex.frames["PA0021.csv"].height == 0


def test_other_files_in_folder_are_ignored(tmp_path):
    write_run(tmp_path)
    (tmp_path / "README.txt").write_text("hello")
    os.symlink("/etc/passwd", tmp_path / "link.csv")
    assert read_run(tmp_path).frames["RT.csv"].height == 15


# --------------------------------------------------------------------------- files and manifest


def test_missing_folder(tmp_path):
    assert where(fails(tmp_path / "nope")) == ("-", None, None)


def test_missing_file(tmp_path):
    err = fails(write_run(tmp_path, {"PA0009.csv": None}))
    assert where(err) == ("PA0009.csv", None, None)
    assert "missing" in err.reason


def test_symlinked_file(tmp_path):
    write_run(tmp_path)
    real = tmp_path / "elsewhere.csv"
    (tmp_path / "T510.csv").rename(real)
    os.symlink(real, tmp_path / "T510.csv")
    err = fails(tmp_path)
    assert where(err) == ("T510.csv", None, None)
    assert "symbolic link" in err.reason


def test_symlinked_manifest(tmp_path):
    write_run(tmp_path)
    (tmp_path / "manifest.json").rename(tmp_path / "m.json")
    os.symlink(tmp_path / "m.json", tmp_path / "manifest.json")
    assert where(fails(tmp_path)) == ("manifest.json", None, None)


def test_directory_in_place_of_file(tmp_path):
    write_run(tmp_path, {"T7UNPA.csv": None})
    (tmp_path / "T7UNPA.csv").mkdir()
    err = fails(tmp_path)
    assert where(err) == ("T7UNPA.csv", None, None)
    assert "regular file" in err.reason


def test_missing_manifest(tmp_path):
    write_run(tmp_path)
    (tmp_path / "manifest.json").unlink()
    assert where(fails(tmp_path)) == ("manifest.json", None, None)


def test_checksum_mismatch(tmp_path):
    write_run(tmp_path)
    path = tmp_path / "T512W.csv"
    path.write_bytes(path.read_bytes().replace(b"overtime", b"overtimE"))
    err = fails(tmp_path)
    assert where(err) == ("T512W.csv", None, None)
    assert "sha256" in err.reason


def test_row_count_mismatch(tmp_path):
    write_run(tmp_path)
    update_manifest(tmp_path, lambda m: m["files"]["RT.csv"].update(rows=14))
    err = fails(tmp_path)
    assert where(err) == ("RT.csv", None, None)
    assert "15 data records" in err.reason and "14" in err.reason


def test_row_count_ignores_quoted_line_breaks(tmp_path):
    pa0001 = PA0001_HEADER + '10000001,20200101,99991231,"A\nB\nC",GVA,P,OHCHR,GV,\n'
    write_run(tmp_path, {"PA0001.csv": pa0001})
    assert json.loads((tmp_path / "manifest.json").read_text())["files"]["PA0001.csv"]["rows"] == 1
    assert read_run(tmp_path).frames["PA0001.csv"]["ENAME"].to_list() == ["A\nB\nC"]
    update_manifest(tmp_path, lambda m: m["files"]["PA0001.csv"].update(rows=3))
    assert where(fails(tmp_path)) == ("PA0001.csv", None, None)


@pytest.mark.parametrize(
    "overrides, word",
    [
        ({"run_type": "SIM4"}, "run_type"),
        ({"run_type": "final"}, "run_type"),
        ({"period": "202513"}, "period"),
        ({"period": "2025-03"}, "period"),
        ({"period": 202503}, "period"),
        ({"period": "２０２５０３"}, "period"),  # full-width digits are not YYYYMM
        ({"format_version": "1.1"}, "format_version"),
        ({"format_version": DELETE}, "format_version"),
        ({"run_id": ""}, "run_id"),
        ({"payroll_area": None}, "payroll_area"),
        ({"pay_date": "20250230"}, "pay_date"),
        ({"pay_date": "2025-03-25"}, "pay_date"),
        ({"extracted_at": "2025-03-10T06:00:00"}, "extracted_at"),
        ({"extracted_at": "2025-03-10T06:00:00+00:00"}, "extracted_at"),
        ({"extracted_at": "2025-02-30T06:00:00Z"}, "extracted_at"),
        ({"files": []}, "files"),
    ],
)
def test_bad_manifest_fields(tmp_path, overrides, word):
    err = fails(write_run(tmp_path, manifest_overrides=overrides))
    # the two keys that name folders downstream are named in the column slot
    column = word if word in ("run_id", "payroll_area") else None
    assert where(err) == ("manifest.json", None, column)
    assert word in err.reason


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"run_id": "GV/202503"}, "run_id"),
        ({"run_id": "GV\\202503"}, "run_id"),
        ({"run_id": ".."}, "run_id"),
        ({"run_id": ".GV-1"}, "run_id"),
        ({"run_id": "G" * 65}, "run_id"),
        ({"run_id": "GV 1"}, "run_id"),
        ({"payroll_area": "gv"}, "payroll_area"),
        ({"payroll_area": "GV_1"}, "payroll_area"),
        ({"payroll_area": "ABCDEFGH9"}, "payroll_area"),
    ],
)
def test_unsafe_manifest_names(tmp_path, overrides, key):
    # both name folders and files downstream (docs/extract-format.md, revised December 2026)
    err = fails(write_run(tmp_path, manifest_overrides=overrides))
    assert where(err) == ("manifest.json", None, key)
    assert err.reason.startswith(f"{key} ")
    # a bad run_id is never handed on; a bad payroll_area comes after a good run_id
    assert err.run_id == (None if key == "run_id" else "GV-202503-SIM1")


def test_safe_manifest_names_at_the_limits(tmp_path):
    run_id = "9a.b_-" + "Z" * 58
    ex = read_run(write_run(tmp_path, manifest_overrides={"run_id": run_id, "payroll_area": "ABCDEFG9"}))
    assert ex.manifest.run_id == run_id and len(run_id) == 64


def test_unknown_run_type(tmp_path):
    err = fails(write_run(tmp_path, manifest_overrides={"run_type": "ADHOC"}))
    assert where(err) == ("manifest.json", None, None)
    assert "ADHOC" in err.reason


def test_bad_period_in_manifest(tmp_path):
    err = fails(write_run(tmp_path, manifest_overrides={"period": "202500"}))
    assert where(err) == ("manifest.json", None, None)
    assert "202500" in err.reason


def test_manifest_listing_unknown_path_is_never_opened(tmp_path, monkeypatch):
    write_run(tmp_path)
    update_manifest(
        tmp_path,
        lambda m: m["files"].update({"../../etc/passwd": {"rows": 1, "sha256": "0" * 64}}),
    )
    opened = []
    real_open = os.open
    def spy(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    err = fails(tmp_path)
    assert where(err) == ("manifest.json", None, None)
    assert "../../etc/passwd" in err.reason
    assert not any("passwd" in p for p in opened)


def test_manifest_missing_a_file_entry(tmp_path):
    write_run(tmp_path)
    update_manifest(tmp_path, lambda m: m["files"].pop("T7UNRATE.csv"))
    err = fails(tmp_path)
    assert where(err) == ("manifest.json", None, None)
    assert "T7UNRATE.csv" in err.reason


@pytest.mark.parametrize(
    "entry",
    [
        {"rows": -1, "sha256": "0" * 64},
        {"rows": True, "sha256": "0" * 64},
        {"rows": 1.0, "sha256": "0" * 64},
        {"rows": 1, "sha256": "A" * 64},
        {"rows": 1, "sha256": "0" * 63},
        {"sha256": "0" * 64},
        "x",
    ],
)
def test_bad_manifest_file_entries(tmp_path, entry):
    write_run(tmp_path)
    update_manifest(tmp_path, lambda m: m["files"].update({"T510.csv": entry}))
    assert where(fails(tmp_path)) == ("manifest.json", None, None)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[]",
        b"\xff\xfe{}",
        b'{"format_version": "1.0", "format_version": "1.0"}',
        b'{"rows": NaN}',
        b"[" * 100_000,
    ],
)
def test_unreadable_manifest(data):
    with pytest.raises(ExtractError) as info:
        parse_manifest(data)
    assert where(info.value) == ("manifest.json", None, None)


def test_read_manifest_alone(tmp_path):
    manifest, raw = read_manifest(write_run(tmp_path))
    assert manifest.run_id == "GV-202503-SIM1"
    assert json.loads(raw)["period"] == "202503"


# --------------------------------------------------------------------------- CSV dialect


def test_empty_file(tmp_path):
    err = fails(write_run(tmp_path, {"T7UNPA.csv": b""}))
    assert where(err) == ("T7UNPA.csv", None, None)
    assert "empty" in err.reason


def test_file_with_only_line_breaks_has_no_header(tmp_path):
    data = b"\xef\xbb\xbf\r\n\n"
    assert where(fails(write_run(tmp_path, {"T7UNPA.csv": data}))) == ("T7UNPA.csv", None, None)


def test_missing_column(tmp_path):
    text = "PERNR,BEGDA,ENDDA,BANKS,WAERS\n10000001,20200101,99991231,CH,USD\n"
    err = fails(write_run(tmp_path, {"PA0009.csv": text}))
    assert where(err) == ("PA0009.csv", 1, "IBAN")
    assert "missing column IBAN" in err.reason


def test_duplicate_contract_column(tmp_path):
    text = "KEY,VALUE,BEGDA,ENDDA,VALUE\nSPOUSE_RATE,0.06,20250101,99991231,0.07\n"
    err = fails(write_run(tmp_path, {"T7UNRATE.csv": text}))
    assert where(err) == ("T7UNRATE.csv", 1, "VALUE")
    assert "duplicate" in err.reason


def test_semicolon_delimiter(tmp_path):
    text = "WERKS;BEGDA;ENDDA;MULTIPLIER\nGVA;20250101;99991231;81,7\n"
    err = fails(write_run(tmp_path, {"T7UNPA.csv": text}))
    assert where(err) == ("T7UNPA.csv", 1, "WERKS")
    assert "missing columns WERKS, BEGDA, ENDDA, MULTIPLIER" in err.reason
    assert "comma-separated" in err.reason


def test_truncated_line(tmp_path):
    text = rt(rt_line(), "10000001,00001,202503,202503,1010,5", rt_line())
    err = fails(write_run(tmp_path, {"RT.csv": text}))
    assert where(err) == ("RT.csv", 3, None)
    assert "too few fields (6" in err.reason


def test_truncated_last_line_without_newline(tmp_path):
    text = rt(rt_line()) + "10000001,00001,202503"
    assert where(fails(write_run(tmp_path, {"RT.csv": text}))) == ("RT.csv", 3, None)


def test_extra_field(tmp_path):
    text = rt(rt_line(), rt_line(), rt_line() + ",oops")
    err = fails(write_run(tmp_path, {"RT.csv": text}))
    assert where(err) == ("RT.csv", 4, None)
    assert "too many fields (9" in err.reason


def test_blank_line(tmp_path):
    text = rt(rt_line(), rt_line()).replace("\n", "\n\n", 2)
    err = fails(write_run(tmp_path, {"RT.csv": text}))
    assert where(err) == ("RT.csv", 2, None)
    assert "blank line" in err.reason


def test_blank_line_at_end(tmp_path):
    text = rt(rt_line(), rt_line()) + "\r\n"
    err = fails(write_run(tmp_path, {"RT.csv": text}))
    assert where(err) == ("RT.csv", 4, None)
    assert "blank line" in err.reason


def test_blank_line_in_file_with_quoted_line_breaks(tmp_path):
    pa0001 = PA0001_HEADER + '10000001,20200101,99991231,"A\n\nB",GVA,P,OHCHR,GV,\n\n'
    err = fails(write_run(tmp_path, {"PA0001.csv": pa0001}))
    assert where(err) == ("PA0001.csv", 5, None)  # the blank line inside the quotes is data


def test_stray_quote_in_unquoted_field(tmp_path):
    pa0001 = PA0001_HEADER + (
        "10000001,20200101,99991231,Marie,GVA,P,OHCHR,GV,\n"
        '10000002,20200101,99991231,O"Brien,GVA,P,OHCHR,GV,\n'
        "10000003,20200101,99991231,Anna,GVA,P,OHCHR,GV,\n"
    )
    err = fails(write_run(tmp_path, {"PA0001.csv": pa0001}))
    assert where(err) == ("PA0001.csv", 3, "ENAME")
    assert "quote inside an unquoted field" in err.reason


def test_text_after_closing_quote(tmp_path):
    pa0001 = PA0001_HEADER + '10000001,20200101,99991231,"Marie"x,GVA,P,OHCHR,GV,\n'
    err = fails(write_run(tmp_path, {"PA0001.csv": pa0001}))
    assert where(err) == ("PA0001.csv", 2, "ENAME")


def test_unterminated_quote(tmp_path):
    pa0001 = PA0001_HEADER + (
        "10000001,20200101,99991231,Marie,GVA,P,OHCHR,GV,\n"
        '10000002,20200101,99991231,"Anna,GVA,P,OHCHR,GV,\n'
        "10000003,20200101,99991231,Paul,GVA,P,OHCHR,GV,\n"
    )
    err = fails(write_run(tmp_path, {"PA0001.csv": pa0001}))
    assert where(err) == ("PA0001.csv", 3, "ENAME")
    assert "unterminated" in err.reason


def test_bare_cr(tmp_path):
    text = rt(rt_line(), rt_line(lgart="1010") + "\r" + rt_line(lgart="1100"))
    err = fails(write_run(tmp_path, {"RT.csv": text}))
    assert where(err) == ("RT.csv", 3, "ANZHL")
    assert "CR" in err.reason


def test_non_utf8_bytes_report_the_line(tmp_path):
    pa0001 = (PA0001_HEADER + "10000001,20200101,99991231,Marie,GVA,P,OHCHR,GV,\n").encode()
    pa0001 += "10000002,20200101,99991231,Müller,GVA,P,OHCHR,GV,\n".encode("latin-1")
    err = fails(write_run(tmp_path, {"PA0001.csv": pa0001}))
    assert where(err) == ("PA0001.csv", 3, None)
    assert "UTF-8" in err.reason


def test_record_spanning_two_lines_then_error(tmp_path):
    pa0001 = PA0001_HEADER + (
        '10000001,20200101,99991231,"Marie\nDupont",GVA,P,OHCHR,GV,\n'
        "10000002,20200101,99991231,Anna,GVA,X,OHCHR,GV,\n"
    )
    err = fails(write_run(tmp_path, {"PA0001.csv": pa0001}))
    assert where(err) == ("PA0001.csv", 4, "PERSG")


def test_record_spanning_lines_then_dialect_error(tmp_path):
    pa0001 = PA0001_HEADER + (
        '10000001,20200101,99991231,"Marie\r\n\r\nDupont",GVA,P,OHCHR,GV,\r\n'
        "10000002,20200101,99991231,Anna,GVA,P,OHCHR\r\n"
    )
    err = fails(write_run(tmp_path, {"PA0001.csv": pa0001}))
    assert where(err) == ("PA0001.csv", 5, None)


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    "betrg, cell",
    [
        ("abc", "abc"),
        ("12.345", "12.345"),  # 3 decimals
        ('"1,234.50"', "1,234.50"),  # thousands separator
        ("1'234.50", "1'234.50"),
        ("12.50-", "12.50-"),  # trailing minus
        ("+12.50", "+12.50"),
        ("12.", "12."),
        (".5", ".5"),
        (" 12.50", " 12.50"),
        ("١٢٣", "١٢٣"),  # Arabic-Indic digits are not digits here
    ],
)
def test_bad_amounts(tmp_path, betrg, cell):
    text = rt(rt_line(), rt_line(lgart="1010", betrg=betrg))
    err = fails(write_run(tmp_path, {"RT.csv": text}))
    assert where(err) == ("RT.csv", 3, "BETRG")
    assert repr(cell) in err.reason


def test_non_numeric_amount(tmp_path):
    text = rt(rt_line(betrg="n/a"))
    assert where(fails(write_run(tmp_path, {"RT.csv": text}))) == ("RT.csv", 2, "BETRG")


def test_amount_with_three_decimals(tmp_path):
    text = DEFAULT_FILES["T510.csv"].replace("80000.00", "80000.001")
    assert where(fails(write_run(tmp_path, {"T510.csv": text}))) == ("T510.csv", 2, "ANNUAL_NET")


def test_thousands_separator(tmp_path):
    text = rt(rt_line(betrg='"6,666.67"'))
    assert where(fails(write_run(tmp_path, {"RT.csv": text}))) == ("RT.csv", 2, "BETRG")


def test_trailing_minus(tmp_path):
    text = rt(rt_line(), rt_line(betrg="987.50-"))
    assert where(fails(write_run(tmp_path, {"RT.csv": text}))) == ("RT.csv", 3, "BETRG")


def test_amount_out_of_range(tmp_path):
    text = rt(rt_line(betrg="12345678901234567.00"))
    err = fails(write_run(tmp_path, {"RT.csv": text}))
    assert where(err) == ("RT.csv", 2, "BETRG")
    assert "range" in err.reason


def test_number_too_long_for_decimal38(tmp_path):
    text = "KEY,VALUE,BEGDA,ENDDA\nA,0.5,20250101,99991231\nB,1" + "0" * 37 + ",20250101,99991231\n"
    err = fails(write_run(tmp_path, {"T7UNRATE.csv": text}))
    assert where(err) == ("T7UNRATE.csv", 3, "VALUE")
    assert "38 digits" in err.reason


def test_number_with_more_than_38_decimals(tmp_path):
    text = "KEY,VALUE,BEGDA,ENDDA\nA,0." + "1" * 39 + ",20250101,99991231\n"
    assert where(fails(write_run(tmp_path, {"T7UNRATE.csv": text}))) == ("T7UNRATE.csv", 2, "VALUE")


@pytest.mark.parametrize(
    "value", ["20250230", "20230229", "20251301", "00000101", "2025031", "2025-03-01"]
)
def test_impossible_dates(tmp_path, value):
    text = f"WERKS,BEGDA,ENDDA,MULTIPLIER\nGVA,20250101,99991231,81.7\nNBO,{value},99991231,90\n"
    err = fails(write_run(tmp_path, {"T7UNPA.csv": text}))
    assert where(err) == ("T7UNPA.csv", 3, "BEGDA")
    assert value in err.reason


def test_impossible_date_20250230(tmp_path):
    text = DEFAULT_FILES["PA0021.csv"].replace("20150601", "20250230")
    err = fails(write_run(tmp_path, {"PA0021.csv": text}))
    assert where(err) == ("PA0021.csv", 3, "FGBDT")
    assert "real calendar date" in err.reason


def test_empty_results_in_regular_run(tmp_path):
    err = fails(write_run(tmp_path, {"RT.csv": RT_HEADER}, {"run_type": "FINAL"}))
    assert where(err) == ("RT.csv", None, None)
    assert "regular run" in err.reason


def test_inper_differs_from_period(tmp_path):
    text = rt(rt_line(), rt_line(fpper="202502", inper="202502"))
    err = fails(write_run(tmp_path, {"RT.csv": text}))
    assert where(err) == ("RT.csv", 3, "INPER")
    assert "202503" in err.reason


def test_fpper_after_inper(tmp_path):
    text = rt(rt_line(), rt_line(), rt_line(fpper="202504"))
    err = fails(write_run(tmp_path, {"RT.csv": text}))
    assert where(err) == ("RT.csv", 4, "FPPER")


def test_bad_period_value(tmp_path):
    text = rt(rt_line(fpper="202513"))
    assert where(fails(write_run(tmp_path, {"RT.csv": text}))) == ("RT.csv", 2, "FPPER")


@pytest.mark.parametrize(
    "name, old, new, line, column",
    [
        ("PA0008.csv", "P-3,05,100", "P-3,16,100", 2, "TRFST"),
        ("PA0008.csv", "G-4,03,50", "G-4,3,50", 3, "TRFST"),
        ("PA0008.csv", "G-4,03,50", "G-8,03,50", 3, "TRFGR"),
        ("PA0001.csv", "GVA,P,", "GVA,X,", 2, "PERSG"),
        ("PA0009.csv", "USD", "EUR", 2, "WAERS"),
        ("PA0000.csv", "01,NEW,3", "10,NEW,3", 3, "MASSN"),
        ("PA0000.csv", "01,NEW,3", "01,NEW,2", 3, "STAT2"),
        ("PA0021.csv", "03,2,", "03,3,", 4, "FAMSA"),
        ("PA0021.csv", "03,2,", "3,2,", 4, "OBJPS"),
        ("PA0021.csv", "99991231,X\n10000001,03", "99991231,Y\n10000001,03", 3, "DEPENDENT"),
        ("T512W.csv", "overtime,EARNING", "overtime,BONUS", 6, "CLASS"),
        ("T512W.csv", "EARNING,OFFCYCLE,", "EARNING,OFFCYCLE|X,", 8, "RUN_TYPES"),
        ("T512W.csv", "adjustment,EARNING,REGULAR,HR", "adjustment,EARNING,REGULAR,IT", 3, "OWNER"),
        ("T512W.csv", "3200,", "320,", 11, "LGART"),
        ("PA0008.csv", "P-3,05,100", "P-3,05,101", 2, "BSGRD"),
        ("PA0008.csv", "G-4,03,50", "G-4,03,0", 3, "BSGRD"),
        ("PA0008.csv", "G-4,03,50", "G-4,03,5.5", 3, "BSGRD"),
        ("PA0000.csv", "10000002", "1000002", 3, "PERNR"),
        ("PA0000.csv", "10000002", "１0000002", 3, "PERNR"),  # full-width digit
        ("RT.csv", "00002,202503,202503,1400", "2a,202503,202503,1400", 12, "SEQNR"),
    ],
)
def test_bad_codes(tmp_path, name, old, new, line, column):
    text = DEFAULT_FILES[name]
    assert old in text
    err = fails(write_run(tmp_path, {name: text.replace(old, new, 1)}))
    assert where(err) == (name, line, column)


@pytest.mark.parametrize(
    "name, old, new, line, column",
    [
        ("PA0000.csv", "20220301,99991231,01,NEW,3", "20220301,99991231,,NEW,3", 3, "MASSN"),
        ("PA0001.csv", "Zhāng 张伟", '""', 3, "ENAME"),
        ("RT.csv", "1010,5446.67", "1010,", 3, "BETRG"),
        ("T7UNRATE.csv", "SPOUSE_RATE,0.06", ",0.06", 3, "KEY"),
        ("PA0009.csv", "20200101,99991231,CH", "20200101,,CH", 2, "ENDDA"),
    ],
)
def test_null_in_non_nullable_column(tmp_path, name, old, new, line, column):
    text = DEFAULT_FILES[name]
    assert old in text
    err = fails(write_run(tmp_path, {name: text.replace(old, new, 1)}))
    assert where(err) == (name, line, column)
    assert "must not be empty" in err.reason


def test_nullable_columns_may_be_empty(tmp_path):
    text = DEFAULT_FILES["PA0001.csv"].replace("CC100", "")
    frame = read_run(write_run(tmp_path, {"PA0001.csv": text})).frames["PA0001.csv"]
    assert frame["KOSTL"].to_list() == [None, None]


def test_first_error_by_row_then_column(tmp_path):
    # Row 3 has two bad values, row 4 one: the earliest row wins, then contract order.
    text = rt(rt_line(), rt_line(betrg="x", waers="EUR"), rt_line(lgart="12"))
    assert where(fails(write_run(tmp_path, {"RT.csv": text}))) == ("RT.csv", 3, "BETRG")


def test_files_are_checked_in_contract_order(tmp_path):
    write_run(tmp_path, {"RT.csv": rt("x"), "PA0000.csv": None})
    assert where(fails(tmp_path)) == ("PA0000.csv", None, None)


def test_error_string_format(tmp_path):
    err = fails(write_run(tmp_path, {"RT.csv": rt(rt_line(waers="EUR"))}))
    assert str(err).startswith("RT.csv:2:WAERS: ")
    err = fails(write_run(tmp_path / "b", {"T510.csv": b""}))
    assert str(err).startswith("T510.csv:-:-: ")


# --------------------------------------------------------------------------- properties

# tmp_path_factory is session-scoped, so each example gets a fresh folder of its own.
_PROPERTY = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_text = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12)
_date = st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))


def _ymd(d: date) -> str:
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"  # strftime drops zeros of years < 1000


@st.composite
def _assignments(draw):
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        rows.append(
            {
                "PERNR": draw(st.from_regex(r"[0-9]{8}", fullmatch=True)),
                "BEGDA": draw(_date),
                "ENDDA": draw(_date),
                "ENAME": draw(_text),
                "WERKS": draw(_text),
                "PERSG": draw(st.sampled_from("PDG")),
                "ORGEH": draw(_text),
                "ABKRS": draw(_text),
                "KOSTL": draw(st.none() | _text),
            }
        )
    return rows


@settings(max_examples=150, **_PROPERTY)
@given(
    rows=_assignments(),
    extra=st.booleans(),
    shuffle=st.randoms(use_true_random=False),
    terminator=st.sampled_from(["\n", "\r\n"]),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    bom=st.booleans(),
    final_newline=st.booleans(),
)
def test_property_csv_written_rows_round_trip(
    tmp_path_factory, rows, extra, shuffle, terminator, quoting, bom, final_newline
):
    columns = [c.name for c in schema.FILES["PA0001.csv"]] + (["EXTRA"] if extra else [])
    shuffle.shuffle(columns)
    if terminator == "\n" and quoting == csv.QUOTE_MINIMAL:
        # csv only quotes a lone CR when it is part of the line terminator.
        strip = lambda v: v.replace("\r", "") if isinstance(v, str) else v  # noqa: E731
        rows = [{k: strip(v) for k, v in r.items()} for r in rows]
        rows = [r for r in rows if all(v != "" for k, v in r.items() if k != "KOSTL")]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=terminator, quoting=quoting)
    writer.writerow(columns)
    for r in rows:
        cells = {**r, "BEGDA": _ymd(r["BEGDA"]), "ENDDA": _ymd(r["ENDDA"]), "EXTRA": 'e,"'}
        writer.writerow(["" if cells[c] is None else cells[c] for c in columns])
    text = out.getvalue()
    if not final_newline:
        text = text.removesuffix(terminator)
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    folder = write_run(tmp_path_factory.mktemp("run"), {"PA0001.csv": data})
    frame = read_run(folder).frames["PA0001.csv"]
    assert frame.rows(named=True) == rows


@st.composite
def _csvish(draw):
    """Bytes that look like CSV: a real header (sometimes) and fragments that matter."""
    name = draw(st.sampled_from(schema.FILE_NAMES))
    header = ",".join(c.name for c in schema.FILES[name]) + "\n"
    pieces = st.sampled_from(
        [",", '"', '""', "\r", "\n", "\r\n", "0", "1", "20250101", "202503", "10000001", "X",
         "-", ".", ";", " ", "é", "USD", "P-3", "99991231", "00", "1000"]
    )
    body = "".join(draw(st.lists(pieces, max_size=60))).encode()
    if draw(st.booleans()):
        body = body.replace(b"\xc3", b"\xff", 1)
    prefix = header.encode() if draw(st.booleans()) else b""
    return name, prefix + body


@settings(max_examples=300, **_PROPERTY)
@given(sample=_csvish(), raw=st.binary(max_size=200), use_raw=st.booleans(),
       run_type=st.sampled_from(schema.RUN_TYPES))
def test_property_random_bytes_only_raise_extract_error(
    tmp_path_factory, sample, raw, use_raw, run_type
):
    name, data = sample
    files = {name: raw if use_raw else data}
    folder = write_run(tmp_path_factory.mktemp("run"), files, {"run_type": run_type})
    try:
        read_run(folder)
    except ExtractError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_property_random_manifest_only_raises_extract_error(data):
    try:
        parse_manifest(data)
    except ExtractError as err:
        assert err.file == "manifest.json" and err.line is None


def test_fixture_counts_like_the_reader(tmp_path):
    # The fixture's row counts are what the reader counts (else every test would be moot).
    frames = read_run(write_run(tmp_path)).frames
    for name, text in DEFAULT_FILES.items():
        assert count_records(text.encode()) == frames[name].height


def _reference_records(text: str):
    """An independent char-by-char reading of the contract's dialect, for differential tests:
    a list of (start line, fields) with the header first, or the start line of the first
    malformed record."""
    records, line, i, n = [], 1, 0, len(text)
    while i < n:
        start, fields = line, []
        while True:
            if i < n and text[i] == '"':
                i, buf = i + 1, []
                while True:
                    if i >= n:
                        return start  # unterminated quote
                    if text[i] == '"':
                        if text[i + 1 : i + 2] == '"':
                            buf.append('"')
                            i += 2
                            continue
                        i += 1
                        break
                    line += text[i] == "\n"
                    buf.append(text[i])
                    i += 1
                fields.append("".join(buf))
            else:
                j = i
                while j < n and text[j] not in ',"\r\n':
                    j += 1
                if j < n and text[j] == '"':
                    return start  # quote inside an unquoted field
                fields.append(text[i:j])
                i = j
            if i >= n:
                break
            if text[i] == ",":
                i += 1
                continue
            if text[i] == "\n" or text.startswith("\r\n", i):
                i += 1 + (text[i] == "\r")
                line += 1
                break
            return start  # bare CR, or text after a closing quote
        if fields == [""]:
            return start  # blank line
        if records and len(fields) != len(records[0][1]):
            return start  # not as many fields as the header
        records.append((start, fields))
    return records


def _reference_first_value_error(records, header):
    """(line, column) of the first bad PA0001 value (rows, then contract order), or None."""
    for line, fields in records[1:]:
        row = dict(zip(header, fields))
        for c in schema.FILES["PA0001.csv"]:
            v = row[c.name]
            if v == "":
                if not c.nullable:
                    return line, c.name
            elif c.name == "PERNR" and not (len(v) == 8 and all(ch in "0123456789" for ch in v)):
                return line, c.name
            elif c.name == "PERSG" and v not in ("P", "D", "G"):
                return line, c.name
            elif c.kind == "date":
                ok = len(v) == 8 and all(ch in "0123456789" for ch in v)
                try:
                    ok = ok and date(int(v[:4]), int(v[4:6]), int(v[6:])) is not None
                except ValueError:
                    ok = False
                if not ok:
                    return line, c.name
    return None


_FRAGMENTS = st.sampled_from(
    [",", '"', '""', "\r", "\n", "\r\n", "a", "é", " ", "20250101", "10000001", "P", "x y"]
)


@st.composite
def _mangled_pa0001(draw):
    header = [c.name for c in schema.FILES["PA0001.csv"]]
    good = ["10000001", "20200101", "99991231", "Marie", "GVA", "P", "OHCHR", "GV", "CC1"]
    lines = [",".join(header)]
    for _ in range(draw(st.integers(1, 5))):
        fields = list(good)
        for k in draw(st.lists(st.integers(0, 8), max_size=3)):
            soup = "".join(draw(st.lists(_FRAGMENTS, max_size=4)))
            fields[k] = f'"{soup}"' if draw(st.booleans()) else soup
        lines.append(",".join(fields))
    terminator = draw(st.sampled_from(["\n", "\r\n"]))
    text = terminator.join(lines) + draw(st.sampled_from(["", terminator]))
    return header, text


@settings(max_examples=300, **_PROPERTY)
@given(sample=_mangled_pa0001())
def test_property_dialect_agrees_with_reference(tmp_path_factory, sample):
    header, text = sample
    folder = write_run(tmp_path_factory.mktemp("run"), {"PA0001.csv": text})
    expected = _reference_records(text)
    if isinstance(expected, list):  # give the manifest the reference count
        update_manifest(folder, lambda m: m["files"]["PA0001.csv"].update(rows=len(expected) - 1))
    try:
        frame = read_run(folder).frames["PA0001.csv"]
    except ExtractError as err:
        assert err.file == "PA0001.csv"
        if isinstance(expected, int):
            assert err.line == expected
        else:
            assert (err.line, err.column) == _reference_first_value_error(expected, header)
        return
    assert isinstance(expected, list), "reader accepted a malformed file"
    assert _reference_first_value_error(expected, header) is None
    assert frame["ENAME"].to_list() == [f[3] for _, f in expected[1:]]
    assert frame["KOSTL"].to_list() == [f[8] or None for _, f in expected[1:]]
