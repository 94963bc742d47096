"""docs/ is in the repository, complete, and says what the code does.

(a) every docs page the README cites exists (and every page docs/README.md links);
(b) nothing tracked points outside the repository;
(c) the facts the code depends on are written in docs/ as the code uses them: the ten extract
    files and their columns, the manifest keys, the exit statuses, the columns of
    exceptions.csv and cases.csv in order, the declared stages.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = ("README.md", "extract-format.md", "cli-contract.md", "design.md", "stack-notes.md", "pay-figures.md")

# cli-contract 1.1, in order (the shared contract's tables)
EXCEPTIONS_COLUMNS = ("run_id", "PERNR", "detector", "category", "severity", "owner", "LGART", "FPPER",
                      "amount", "expected", "WAERS", "score", "explanation", "case_id")
CASES_COLUMNS = ("run_id", "case_id", "PERNR", "root_cause", "owner", "severity", "status", "first_seen_run",
                 "due_date", "findings", "amount_at_stake", "WAERS", "summary")
MANIFEST_KEYS = ("format_version", "run_id", "payroll_area", "period", "run_type", "pay_date", "extracted_at",
                 "files")
STAGES = ("read", "load", "prepare", "validate", "detect", "triage", "group_cases", "store", "write_reports",
          "send_mail")


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def flat(text: str) -> str:
    """`text` with every run of whitespace made one space (facts survive re-wrapping)."""
    return " ".join(text.split())


def section(text: str, heading: str) -> str:
    """The body of the markdown section whose heading line starts with `heading`."""
    m = re.search(rf"^(#+) {re.escape(heading)}.*$", text, re.M)
    assert m, f"no section {heading!r}"
    level = len(m.group(1))
    rest = text[m.end():]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def first_column(table_text: str) -> list[str]:
    """Backticked names in the first column of the first markdown table in `table_text`."""
    names = []
    for line in table_text.splitlines():
        m = re.match(r"\|\s*`([^`]+)`\s*\|", line)
        if m:
            names.append(m.group(1))
        elif names and not line.startswith("|"):
            break
    return names


# (a) ---------------------------------------------------------------------------------------

def test_every_page_exists():
    for name in PAGES:
        assert (DOCS / name).is_file(), f"docs/{name} is missing"


def test_every_docs_page_the_readme_cites_exists():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    cited = set(re.findall(r"docs/[\w./-]*?\.md", readme))
    assert cited, "README.md cites no page of docs/"
    missing = sorted(c for c in cited if not (ROOT / c).is_file())
    assert not missing, f"README.md cites missing pages: {missing}"
    # the README's Documentation section reaches every page
    assert {f"docs/{p}" for p in PAGES} <= cited


def test_links_between_docs_pages_resolve():
    for name in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", page(name)):
            assert (DOCS / target).is_file(), f"docs/{name} links to missing {target}"


def test_each_page_names_the_contract_it_follows():
    assert "extract format 1.0 (revised December 2026)" in page("extract-format.md")
    assert "command-line contract 1.1" in page("cli-contract.md")
    for name in PAGES[1:]:
        assert "kept in step" in page(name) or "follows the shared" in page(name), name


# (b) ---------------------------------------------------------------------------------------

OUTSIDE = ("..", "/shared"), ("/wo", "rk/")  # split so this file does not match itself


def _tracked_text_files() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    files = []
    for rel in out.decode("utf-8").split("\0"):
        p = ROOT / rel
        if not rel or rel.endswith(".ipynb") or not p.is_file():
            continue
        files.append(p)
    return files


def test_no_tracked_file_points_outside_the_repository():
    needles = ["".join(parts) for parts in OUTSIDE]
    hits = []
    for p in _tracked_text_files():
        data = p.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        text = data.decode("utf-8", errors="replace")
        for n, line in enumerate(text.splitlines(), 1):
            if any(needle in line for needle in needles):
                hits.append(f"{p.relative_to(ROOT)}:{n}")
    assert not hits, f"paths outside the repository: {hits}"


# (c) extract-format.md ---------------------------------------------------------------------

def test_extract_format_names_the_ten_files_and_their_columns():
    from paywatch.extract import schema

    text = page("extract-format.md")
    assert len(schema.FILE_NAMES) == 10
    layout = re.search(r"```\n<any-name>/\n(.*?)```", text, re.S).group(1)
    listed = [line.split()[0] for line in layout.splitlines() if line.strip()]
    assert listed == ["manifest.json", *schema.FILE_NAMES]
    # each file's column list, in the code's order, is written out once as `A, B, C`
    lists = {tuple(m.split(", ")) for m in re.findall(r"`([A-Z0-9_]+(?:, [A-Z0-9_]+)+)`", text)}
    for name, cols in schema.FILES.items():
        assert tuple(c.name for c in cols) in lists, f"columns of {name} not written out in order"
        assert f"**{name.removesuffix('.csv')}" in text, f"{name} has no section"
    nullable = sorted(c.name for cols in schema.FILES.values() for c in cols if c.nullable)
    assert "Only `ANZHL`, `MASSG`, `DEPENDENT` and `KOSTL` may be null" in flat(text)
    assert nullable == sorted({"ANZHL", "MASSG", "DEPENDENT", "KOSTL"})


def test_extract_format_names_every_manifest_key():
    from paywatch.extract import schema

    text = page("extract-format.md")
    example = json.loads(re.search(r"```json\n(.*?)```", text, re.S).group(1).replace("…", ""))
    assert tuple(example) == MANIFEST_KEYS
    assert example["format_version"] == schema.FORMAT_VERSION
    table = first_column(section(text, "manifest.json"))
    assert tuple(table) == MANIFEST_KEYS
    reader = (ROOT / "paywatch" / "extract" / "reader.py").read_text(encoding="utf-8")
    for key in MANIFEST_KEYS:
        assert f'"{key}"' in reader, f"manifest key {key} is documented but not read"
    for run_type in schema.RUN_TYPES:
        assert f"`{run_type}`" in section(text, "manifest.json")


def test_extract_format_keeps_the_revised_rules_and_the_numbers():
    text = page("extract-format.md")
    for fact in (
        "1 to 64 characters from `A`–`Z`, `a`–`z`, `0`–`9`, `.`, `_` and `-`, not starting with `.`",
        "1 to 8 characters from `A`–`Z` and `0`–`9`",
        "`period`, then `extracted_at`, then `run_id`",
        "at most 12 months",
        "half away from zero",
        "`ANZHL` hours × round(`ANNUAL_NET` × 1.5 / 2080)",
        "| 6666.67 | 5446.67 | 400.00 | 525.00 | -987.50 | -484.53 | 13038.34 | 11566.31 |",
        "**625.03**", "**−89.87**", "**−25.00**", "510.16", "**6667.08**", "**5447.00**",
        "`PENSION_STAFF_RATE` (0.079), `SPOUSE_RATE` (0.06), `CHILD_ANNUAL_USD`, `CHILD_ANNUAL_CHF`, "
        "`CHILD_AGE_LIMIT` (18), `HEALTH_RATE`",
    ):
        assert fact in flat(text), fact
    wage_types = re.findall(r"^\| (\d{4}) \|", section(text, "The pay model"), re.M)
    assert wage_types == ["1000", "1010", "1100", "1110", "1400", "1500", "2000", "3000", "3100", "3200", "3300"]
    from paywatch.extract import schema
    for total in (schema.TOTAL_GROSS, schema.TOTAL_NET, schema.TOTAL_PAID):
        assert f"`{total}`" in text


def test_extract_format_keeps_the_code_sets_the_reader_enforces():
    from paywatch.extract import schema

    text = page("extract-format.md")
    assert "`TRFST` 2 digits `01`–`15`" in text and schema.CODE_PATTERNS["TRFST"] == r"0[1-9]|1[0-5]"
    assert "`STAT2` `0`, `1` or `3`" in text and schema.CODE_PATTERNS["STAT2"] == r"[013]"
    assert "`WAERS` `USD` or `CHF`" in text and schema.CODE_PATTERNS["WAERS"] == r"USD|CHF"
    assert "`PERSG` `P`, `D` or `G`" in text and schema.CODE_PATTERNS["PERSG"] == r"[PDG]"
    assert "exactly 8 digits" in text and schema.KIND_PATTERNS["id"] == r"\d{8}"
    assert text.count("▣") >= 15  # each format rule is marked


# (c) cli-contract.md -----------------------------------------------------------------------

def test_cli_contract_exit_statuses():
    exits = re.findall(r"^\| ([0-9]) \|", section(page("cli-contract.md"), "Exit status"), re.M)
    assert exits == ["0", "1", "2", "3", "4"]


def test_cli_contract_exceptions_columns_in_order():
    cols = first_column(section(page("cli-contract.md"), "exceptions.csv"))
    assert tuple(cols) == EXCEPTIONS_COLUMNS
    assert len(cols) == 14


def test_cli_contract_cases_columns_in_order():
    cols = first_column(section(page("cli-contract.md"), "cases.csv"))
    assert tuple(cols) == CASES_COLUMNS
    assert len(cols) == 13


def test_paywatch_writes_the_documented_exceptions_columns():
    """What paywatch/report.py writes today is the documented header, in order (up to case_id)."""
    from paywatch import report

    header = tuple(report.EXCEPTIONS_HEADER)
    assert header == EXCEPTIONS_COLUMNS[: len(header)]


def test_paywatch_writes_every_documented_exceptions_column():
    from paywatch import report

    assert tuple(report.EXCEPTIONS_HEADER) == EXCEPTIONS_COLUMNS


def test_paywatch_cases_header_matches_when_present():
    from paywatch import report

    header = getattr(report, "CASES_HEADER", None)
    if header is None:
        pytest.skip("paywatch does not write cases.csv yet")
    assert tuple(header) == CASES_COLUMNS


# (c) design.md -----------------------------------------------------------------------------

def test_design_declares_the_stages_in_order_and_the_warehouse_resource():
    text = page("design.md")
    assert " ▸ ".join(STAGES) in text
    for stage in STAGES:
        assert f"| {stage} |" in text, f"stage {stage} is not described"
    for api in ("Warehouse.at(db)", "writer(wait_seconds)", "reader()", "paywatch/warehouse/resource.py"):
        assert api in text
    from paywatch.warehouse.resource import Warehouse

    assert all(hasattr(Warehouse, a) for a in ("at", "writer", "reader"))


def test_design_where_things_go_names_files_that_exist():
    text = section(page("design.md"), "Where things go")
    for rel in ("detectors/registry.py", "detectors/defaults.toml", "detectors/rules", "detectors/models",
                "tests/cases", "paywatch/dq/suites", "paywatch/dq/frames.py", "paywatch/report.py"):
        assert rel in text
        assert (ROOT / rel).exists(), rel
