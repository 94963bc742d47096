"""End-to-end tests of `paywatch verify` (docs/cli-contract.md) run as a real subprocess.

The first nine runs of the committed sample data_samples/gv-300 (through GV-202601-FINAL,
two months of history) are verified once per module, in runs.txt order, into a temporary
DuckDB warehouse; GV-202602-SIM1, the next run, is then a run that warehouse has not seen.
Tests that change a warehouse work on a copy of it.

Every verify under test is `python -m paywatch.cli verify ...` in its own process, except the
two chains of nine runs (the sample, and its transformed copy for the "no leaning on the
simulator" test): each chain is one process calling the CLI entry point once per run, which
saves importing the detector and data-quality stack (scikit-learn, Great Expectations) 16
times; PAYWATCH_TEST_PROCESS_PER_RUN=1 gives every chain run its own process too.
Independent verifies (each on its own copy of the warehouse) run in parallel threads, one
per core; a test waits for its own.

DuckDB allows one process per file: the tests open a warehouse (read-only) only while no
`paywatch verify` subprocess is running on it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from paywatch.warehouse.db import warehouse_digest
from extract_fixture import count_records, read_csv, write_csv

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data_samples" / "gv-300"
RUNS = (SAMPLE / "runs.txt").read_text(encoding="utf-8").split()
N_HISTORY = RUNS.index("GV-202601-FINAL") + 1  # runs verified into the module's warehouse
NEW_RUN = RUNS[N_HISTORY]  # GV-202602-SIM1: not in that warehouse
CSV_FILES = ("PA0000.csv", "PA0001.csv", "PA0008.csv", "PA0009.csv", "PA0021.csv", "RT.csv",
             "T510.csv", "T7UNPA.csv", "T512W.csv", "T7UNRATE.csv")

HEADER = ("run_id,PERNR,detector,category,severity,owner,LGART,FPPER,amount,expected,WAERS,"
          "score,explanation,case_id")
COMPARED = ("PERNR", "detector", "category", "severity", "owner", "LGART", "FPPER", "amount",
            "expected", "WAERS", "score")
MESSAGE_RE = re.compile(r"^(?P<file>[^:]+):(?P<line>-|[0-9]+):(?P<column>[^:\s]+): (?P<reason>.+)$")

WORKERS = max(1, min(4, os.cpu_count() or 1))


# ------------------------------------------------------------------------------ helpers


def paywatch_cmd() -> list[str]:
    return [sys.executable, "-m", "paywatch.cli"]


# Every subprocess imports the whole detector and data-quality stack (scikit-learn, scipy,
# Great Expectations). Where the environment forbids bytecode caching
# (PYTHONDONTWRITEBYTECODE), each process compiles it all again (~6-10 s CPU); a private
# bytecode cache outside the repository and the venv avoids that (the first run fills it).
PYCACHE = Path(tempfile.gettempdir()) / f"paywatch-test-pycache-{os.getuid()}"


def cli_env(cwd: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    # the package of this checkout, whatever the venv's editable install points at
    path = [str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env.update({"PYTHONPATH": os.pathsep.join(path),
                "PYTHONPYCACHEPREFIX": str(PYCACHE), "PAYWATCH_HOME": str(cwd / "paywatch-home"),
                "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "400"})
    return env


def run_cli(*args: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m paywatch.cli ARGS` as a separate process."""
    return subprocess.run([*paywatch_cmd(), *map(str, args)], cwd=cwd, env=cli_env(cwd), capture_output=True,
                          text=True, timeout=timeout)


def verify(folder: Path, db: Path, out: Path) -> subprocess.CompletedProcess:
    return run_cli("verify", folder, "--db", db, "--out", out, cwd=db.parent)


def last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def describe(p: subprocess.CompletedProcess) -> str:
    return f"exit {p.returncode}\nstdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[-3000:]}"


def copy_db(src: Path, dst_dir: Path) -> Path:
    """A private copy of a warehouse file (the archive next to it is not needed)."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / src.name
    shutil.copy2(src, dst)
    wal = src.parent / f"{src.name}.wal"
    if wal.exists():
        shutil.copy2(wal, dst_dir / wal.name)
    return dst


def copy_home(src_db: Path, dst_dir: Path) -> Path:
    """A copy of everything kept next to a warehouse (archive, outbox, ...) but reports."""
    shutil.copytree(src_db.parent, dst_dir, ignore=shutil.ignore_patterns("out", "*.lock"))
    return dst_dir / src_db.name


def table_digests(db: Path) -> dict[str, tuple]:
    """(rows, sha256 of sorted rows) per table: names what changed when a digest differs."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main' AND NOT temporary").fetchall()]
        return {n: con.execute(
            "SELECT count(*), sha256(coalesce(string_agg(r, chr(10) ORDER BY r), '')) "
            f'FROM (SELECT CAST(to_json(t) AS VARCHAR) AS r FROM "{n}" AS t)').fetchone() for n in names}
    finally:
        con.close()


def digest(db: Path) -> str:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return warehouse_digest(con, exclude_delivery_log=True)
    finally:
        con.close()


def query(db: Path, sql: str, params=None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()








def fix_manifest(folder: Path, **changes) -> dict:
    """Recompute rows and sha256 of every CSV present (and apply `changes` to the top level)."""
    path = folder / "manifest.json"
    m = json.loads(path.read_text(encoding="utf-8"))
    for name in CSV_FILES:
        if (folder / name).exists():
            data = (folder / name).read_bytes()
            m["files"][name] = {"rows": count_records(data), "sha256": hashlib.sha256(data).hexdigest()}
    m.update(changes)
    path.write_text(json.dumps(m, indent=2), encoding="utf-8")
    return m


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def exceptions(out: Path) -> list[dict]:
    with open(out / "exceptions.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def cents(v: str) -> int:
    whole, _, frac = v.lstrip("-").partition(".")
    c = int(whole) * 100 + int((frac + "00")[:2])
    return -c if v.startswith("-") else c


def money(c: int) -> str:
    return f"{'-' if c < 0 else ''}{abs(c) // 100}.{abs(c) % 100:02d}"


def sort_key(r: dict) -> tuple:
    return r["PERNR"], r["detector"], r["LGART"], r["FPPER"]


@dataclass
class Verified:
    name: str
    proc: subprocess.CompletedProcess
    out: Path
    csv_bytes: bytes | None


# One Python process that calls the CLI entry point once per run, in order, as a scheduler
# calls `paywatch verify` once per run: each call goes through typer's argument parsing and
# its exit code, with that call's stdout and stderr captured apart. Importing the detector
# and data-quality stack (scikit-learn, Great Expectations) costs ~5 s CPU per process, so a
# chain of runs shares one. Results go to a file (argv[2]), one JSON line per run.
# PAYWATCH_TEST_PROCESS_PER_RUN=1 starts `python -m paywatch.cli verify` for every run instead.
CHAIN_DRIVER = r"""
import contextlib, io, json, sys
from paywatch.cli import app
results = open(sys.argv[2], "w", encoding="utf-8")
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            app(args=argv, prog_name="paywatch")
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException as e:  # what an uncaught exception would do to the process
            import traceback
            traceback.print_exc()
            code = 1
    results.write(json.dumps({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}) + "\n")
    results.flush()
    if code != 0:
        break
"""


def verify_chain(names: list[str], src_root: Path, db: Path, out_root: Path) -> list[Verified]:
    """Verify runs in order (stops at the first run that does not exit 0)."""
    argvs = [["verify", str(src_root / n), "--db", str(db), "--out", str(out_root / n)] for n in names]
    if os.environ.get("PAYWATCH_TEST_PROCESS_PER_RUN") == "1":
        procs = []
        for argv in argvs:
            procs.append(run_cli(*argv, cwd=db.parent))
            if procs[-1].returncode != 0:
                break
    else:
        results_file = out_root.parent / f"{out_root.name}-chain.jsonl"
        driver = subprocess.run([sys.executable, "-c", CHAIN_DRIVER, json.dumps(argvs), str(results_file)],
                                cwd=db.parent, env=cli_env(db.parent), capture_output=True, text=True, timeout=900)
        lines = results_file.read_text(encoding="utf-8").splitlines() if results_file.exists() else []
        results = [json.loads(ln) for ln in lines]
        assert results, f"chain driver failed: {describe(driver)}"
        procs = [subprocess.CompletedProcess(argv, r["code"], r["stdout"], r["stderr"])
                 for argv, r in zip(argvs, results)]
    done = []
    for name, p in zip(names, procs):
        out = out_root / name
        data = (out / "exceptions.csv").read_bytes() if (out / "exceptions.csv").exists() else None
        done.append(Verified(name, p, out, data))
    return done


# ------------------------------------------------------------------------------ the "no leaning on the simulator" transform


OPAQUE_NULL_SHARE = 0.15
EXTRA_VALUES = ("", "x", "a,b", 'say "hi"', "ünïcødé 名字", "12.50", "-", "99991231")


def _token(rng: random.Random, alphabet: str, lo: int, hi: int) -> str:
    return "".join(rng.choices(alphabet, k=rng.randint(lo, hi)))


def transform_sample(names: list[str], src_root: Path, dst_root: Path, seed: int):
    """A copy of the runs that only differs in what detectors must not read: row and column
    order, an extra column, folder names, PERNR values (random bijection), SEQNR (random per
    line), MASSG and KOSTL values. Returns ({original name: new folder name}, {original
    PERNR: new PERNR}).

    MASSG and KOSTL get a random value per (staff member, record start, original value), so
    a record keeps its value in every run, also when it is re-delimited (a later run ends
    it earlier), as in SAP. Values that change between runs are test_opaque_fields_...'s
    subject."""
    rng = random.Random(seed)
    pernrs: set[str] = set()
    for name in names:
        for f in CSV_FILES:
            header, rows = read_csv(src_root / name / f)
            if "PERNR" in header:
                i = header.index("PERNR")
                pernrs.update(r[i] for r in rows)
    ordered = sorted(pernrs)
    new = [f"{x:08d}" for x in rng.sample(range(10**8), len(ordered))]  # leading zeros too
    pmap = dict(zip(ordered, new))
    assert len(set(pmap.values())) == len(pmap)
    opaque: dict[tuple, str] = {}

    def opaque_value(key: tuple) -> str:
        if key not in opaque:
            opaque[key] = "" if rng.random() < OPAQUE_NULL_SHARE else _token(
                rng, "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789-_", 1, 10)
        return opaque[key]

    folders = {}
    dst_root.mkdir(parents=True)
    for name in names:
        folder_name = "drop-" + _token(rng, "0123456789abcdef", 12, 12)
        folders[name] = folder_name
        dst = dst_root / folder_name
        dst.mkdir()
        shutil.copy2(src_root / name / "manifest.json", dst / "manifest.json")
        for f in CSV_FILES:
            header, rows = read_csv(src_root / name / f)
            out_rows = []
            for row in rows:
                rec = dict(zip(header, row))
                key = (f, rec.get("PERNR"), rec.get("BEGDA"))
                if "MASSG" in rec:
                    rec["MASSG"] = opaque_value(("MASSG", *key, rec["MASSG"]))
                if "KOSTL" in rec:
                    rec["KOSTL"] = opaque_value(("KOSTL", *key, rec["KOSTL"]))
                if "PERNR" in rec:
                    rec["PERNR"] = pmap[rec["PERNR"]]
                if "SEQNR" in rec:
                    rec["SEQNR"] = _token(rng, "0123456789", 1, 12)
                rec["ZZ_UNKNOWN_COLUMN"] = rng.choice(EXTRA_VALUES)
                out_rows.append(rec)
            cols = [*header, "ZZ_UNKNOWN_COLUMN"]
            rng.shuffle(cols)
            rng.shuffle(out_rows)
            write_csv(dst / f, cols, [[r[c] for c in cols] for r in out_rows])
        m = fix_manifest(dst)
        assert m["files"]["RT.csv"]["rows"] == manifest(src_root / name)["files"]["RT.csv"]["rows"]
    return folders, pmap


# ------------------------------------------------------------------------------ module fixtures
#
# Everything after the module's chain is independent (each job has its own copy of the
# warehouse), so it runs in a pool of `WORKERS` threads, each driving subprocesses; a test
# waits for its own job. The transformed chain runs alongside.


@dataclass
class Sample:
    root: Path
    chain: list[Verified]  # the first N_HISTORY runs of the sample, verified in order
    db: Path  # the warehouse after them (NEW_RUN not loaded)
    digest: str  # its digest without the delivery log

    def result(self, name: str) -> Verified:
        return next(v for v in self.chain if v.name == name)


@dataclass
class Transformed:
    chain: list[Verified]
    folders: dict[str, str]
    pmap: dict[str, str]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("verify_cli")


@pytest.fixture(scope="module")
def pool():
    with ThreadPoolExecutor(max_workers=max(2, WORKERS)) as ex:
        yield ex


def _base_chain(work: Path) -> Sample:
    base = work / "base"
    db = base / "warehouse.duckdb"
    db.parent.mkdir(parents=True)
    chain = verify_chain(RUNS[:N_HISTORY], SAMPLE, db, base / "out")
    return Sample(SAMPLE, chain, db, digest(db))


def _transformed_chain(work: Path) -> Transformed:
    tdir = work / "transformed"
    folders, pmap = transform_sample(RUNS[:N_HISTORY], SAMPLE, tdir / "landing", seed=20260126)
    tdb = tdir / "wh" / "warehouse.duckdb"
    tdb.parent.mkdir(parents=True)
    chain = verify_chain([folders[n] for n in RUNS[:N_HISTORY]], tdir / "landing", tdb, tdir / "out")
    return Transformed(chain, folders, pmap)


@pytest.fixture(scope="module")
def chain_futures(pool, work: Path) -> dict:
    """The sample's first N_HISTORY runs verified in order, and (concurrently: independent
    warehouses) the transformed copy of the same runs."""
    return {"base": pool.submit(_base_chain, work), "transformed": pool.submit(_transformed_chain, work)}


@pytest.fixture(scope="module")
def sample(chain_futures) -> Sample:
    s = chain_futures["base"].result()
    for v in s.chain:
        assert v.proc.returncode == 0, f"{v.name}: {describe(v.proc)}"
    return s


@pytest.fixture(scope="module")
def transformed(chain_futures) -> Transformed:
    return chain_futures["transformed"].result()


@pytest.fixture(scope="module")
def jobs(pool, sample: Sample, work: Path) -> dict:
    """Every verify that starts from the module's warehouse, submitted at once (longest first)."""
    futures = {"plain": pool.submit(job_new_run_plain, sample, work / "plain")}
    futures.update({  # content waits for plain: it is ahead in the queue, so it always runs
        "content": pool.submit(job_content_errors, sample, work / "content", futures["plain"]),
        "opaque": pool.submit(job_opaque_changed, sample, work / "opaque"),
        "correction": pool.submit(job_correction, sample, work / "correction"),
        "dq": pool.submit(job_dq_blocked, sample, work / "dq"),
        "idempotency": pool.submit(job_idempotency, sample, work / "idempotency"),
    })
    for case, corrupt in BAD_CASES.items():
        futures[case] = pool.submit(job_bad_input, sample, work / "bad" / case, corrupt)
    return futures


# ------------------------------------------------------------------------------ 0. the command itself


def test_python_m_paywatch_cli_runs(tmp_path: Path):
    p = run_cli("verify", "--help", cwd=tmp_path)
    assert p.returncode == 0, describe(p)
    assert "--db" in p.stdout and "--out" in p.stdout


@pytest.mark.parametrize("toml, line", [
    ("[PW201]\ntreshold = 4.0\n", "paywatch.toml: [PW201] unknown key 'treshold' (known: "),
    ('[PW201]\nthreshold = "high"\n', 'paywatch.toml: [PW201] threshold must be a number, got "high"'),
], ids=["misspelled_key", "wrong_type"])
def test_verify_refuses_a_bad_config_with_one_line(tmp_path: Path, toml: str, line: str):
    db = tmp_path / "wh" / "warehouse.duckdb"
    db.parent.mkdir()
    (db.parent / "paywatch.toml").write_text(toml, encoding="utf-8")
    p = verify(SAMPLE / RUNS[0], db, tmp_path / "out")
    assert p.returncode == 1, describe(p)
    err = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith(line), describe(p)
    assert "Traceback" not in p.stderr


# ------------------------------------------------------------------------------ 1. happy path


def check_exceptions_file(path: Path, run_id: str) -> list[dict]:
    data = path.read_bytes()
    text = data.decode("utf-8")  # strict: UTF-8
    assert not text.startswith("\ufeff")
    assert "\r" not in text, "LF line ends only"
    assert text.endswith("\n")
    assert text.split("\n", 1)[0] == HEADER
    rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    assert tuple(rows[0]) == tuple(HEADER.split(","))
    recs = [dict(zip(rows[0], r)) for r in rows[1:]]
    for r, raw in zip(recs, rows[1:]):
        assert len(raw) == 14, raw
        assert r["run_id"] == run_id
        assert re.fullmatch(r"[0-9]{8}", r["PERNR"]), r
        assert r["detector"] and r["category"], r
        assert r["severity"] in {"hold", "review", "info"}, r
        assert r["owner"] in {"HR", "FINANCE"}, r
        assert r["LGART"] == "" or len(r["LGART"]) == 4, r
        assert r["FPPER"] == "" or re.fullmatch(r"[0-9]{4}(0[1-9]|1[0-2])", r["FPPER"]), r
        for col in ("amount", "expected"):
            assert r[col] == "" or re.fullmatch(r"-?[0-9]+\.[0-9]{2}", r[col]), (col, r)
        assert r["WAERS"] in {"", "USD", "CHF"}, r
        if r["amount"] or r["expected"]:
            assert r["WAERS"], r
        assert re.fullmatch(r"[0-9](\.[0-9]{1,4})?", r["score"]), r
        assert 0.0 <= float(r["score"]) <= 1.0, r
        assert r["explanation"].strip(), r
    assert [sort_key(r) for r in recs] == sorted(sort_key(r) for r in recs), "rows sorted by PERNR, detector, LGART, FPPER"
    return recs


def test_happy_path_every_sample_run_exit_0_with_contract_csv(sample: Sample):
    assert [v.name for v in sample.chain] == RUNS[:N_HISTORY]
    total = 0
    for v in sample.chain:
        assert v.proc.returncode == 0, f"{v.name}: {describe(v.proc)}"
        assert v.csv_bytes is not None, f"{v.name}: no exceptions.csv in --out"
        recs = check_exceptions_file(v.out / "exceptions.csv", manifest(SAMPLE / v.name)["run_id"])
        total += len(recs)
    assert total > 0, "the sample has injected errors: some run must have exceptions"


def test_happy_path_finds_injected_errors(sample: Sample):
    """Sanity: most injected errors (truth.csv) are found (run_id, PERNR, category)."""
    with open(SAMPLE / "truth.csv", encoding="utf-8", newline="") as f:
        truth = {(r["run_id"], r["PERNR"], r["error_type"]) for r in csv.DictReader(f)}
    found = set()
    for v in sample.chain:
        found |= {(r["run_id"], r["PERNR"], r["category"]) for r in exceptions(v.out)}
    assert truth, "truth.csv is empty"
    recall = len(truth & found) / len(truth)
    assert recall >= 0.5, f"only {recall:.0%} of injected errors found"


# ------------------------------------------------------------------------------ 2. idempotency


def job_idempotency(sample: Sample, d: Path) -> dict:
    db = copy_home(sample.db, d / "wh")
    res = {"before": digest(db), "tables_before": table_digests(db),
           "n_deliveries": query(db, "SELECT count(*) FROM deliveries")[0][0]}
    last = sample.chain[-1]
    early = sample.result("GV-202512-SIM2")  # verified again after later runs and periods
    for key, v in (("last", last), ("early", early)):
        out = d / f"again-{key}"
        res[key] = (v, verify(SAMPLE / v.name, db, out), (out / "exceptions.csv").read_bytes()
                    if (out / "exceptions.csv").exists() else None)
    res["after"] = digest(db)
    res["tables_after"] = table_digests(db)
    res["outcomes"] = query(db, "SELECT run_id, outcome FROM deliveries ORDER BY delivery_id")
    return res


def test_repeated_verify_is_byte_identical_and_changes_only_delivery_log(jobs):
    r = jobs["idempotency"].result()
    for key in ("last", "early"):
        original, p, data = r[key]
        assert p.returncode == 0, describe(p)
        assert data == original.csv_bytes, f"{original.name}: exceptions.csv differs when verified again"
    changed = sorted(t for t in r["tables_after"] if r["tables_after"][t] != r["tables_before"].get(t))
    assert r["after"] == r["before"], \
        f"a repeated verify changed the warehouse beyond the delivery log; tables changed: {changed}"
    assert len(r["outcomes"]) == r["n_deliveries"] + 2
    assert r["outcomes"][-2:] == [(r["last"][0].name, "noop"), (r["early"][0].name, "noop")]


# ------------------------------------------------------------------------------ 3. bad input -> exit 2


def _rt(folder: Path) -> tuple[list[str], list[list[str]]]:
    return read_csv(folder / "RT.csv")


def _set_cell(folder: Path, file: str, record: int, column: str, value: str) -> int:
    """Set one cell (record index 0 = first data record) and return its physical line
    (the files changed here have no quoted line breaks: record k is on line k + 2)."""
    header, rows = read_csv(folder / file)
    rows[record][header.index(column)] = value
    write_csv(folder / file, header, rows)
    return record + 2


def bad_missing_file(folder: Path):
    (folder / "PA0009.csv").unlink()
    return "PA0009.csv", "-", "-"


def bad_checksum(folder: Path):
    header, rows = _rt(folder)
    i = header.index("BETRG")
    rows[100][i] = f"{float(rows[100][i]) + 1:.2f}"
    write_csv(folder / "RT.csv", header, rows)  # manifest NOT fixed
    return "RT.csv", "-", "-"


def bad_missing_column(folder: Path):
    header, rows = read_csv(folder / "PA0008.csv")
    i = header.index("TRFST")
    write_csv(folder / "PA0008.csv", header[:i] + header[i + 1:], [r[:i] + r[i + 1:] for r in rows])
    fix_manifest(folder)
    return "PA0008.csv", "1", "TRFST"


def bad_amount_comma(folder: Path):
    line = _set_cell(folder, "RT.csv", 1233, "BETRG", "12,50")  # written quoted: one field
    fix_manifest(folder)
    return "RT.csv", str(line), "BETRG"


def bad_amount_text(folder: Path):
    line = _set_cell(folder, "RT.csv", 777, "BETRG", "abc")
    fix_manifest(folder)
    return "RT.csv", str(line), "BETRG"


def bad_impossible_date(folder: Path):
    line = _set_cell(folder, "PA0000.csv", 321, "BEGDA", "20250231")
    fix_manifest(folder)
    return "PA0000.csv", str(line), "BEGDA"


def bad_empty_rt(folder: Path):
    header, _ = _rt(folder)
    write_csv(folder / "RT.csv", header, [])
    m = fix_manifest(folder)
    assert m["files"]["RT.csv"]["rows"] == 0 and m["run_type"] != "OFFCYCLE"
    return "RT.csv", "-", "-"


def bad_truncated_record(folder: Path):
    lines = (folder / "RT.csv").read_bytes().split(b"\n")
    k = 1500  # physical line k + 1
    lines[k] = b",".join(lines[k].split(b",")[:5])
    (folder / "RT.csv").write_bytes(b"\n".join(lines))
    fix_manifest(folder)
    return "RT.csv", str(k + 1), "-"


def bad_non_utf8(folder: Path):
    lines = (folder / "PA0001.csv").read_bytes().split(b"\n")
    header = lines[0].decode().split(",")
    k = 200  # physical line k + 1; no quotes in it
    fields = lines[k].split(b",")
    assert b'"' not in lines[k]
    fields[header.index("ENAME")] = "José Müller".encode("latin-1")
    lines[k] = b",".join(fields)
    (folder / "PA0001.csv").write_bytes(b"\n".join(lines))
    fix_manifest(folder)
    # The column cannot always be known before the bytes are decoded: ENAME or '-'.
    return "PA0001.csv", str(k + 1), {"ENAME", "-"}


def bad_semicolons(folder: Path):
    data = (folder / "RT.csv").read_bytes()
    assert b'"' not in data
    (folder / "RT.csv").write_bytes(data.replace(b",", b";"))
    fix_manifest(folder)
    return "RT.csv", "1", "PERNR"  # the first contract column the header lacks


def bad_unknown_run_type(folder: Path):
    fix_manifest(folder, run_type="SIM4")
    return "manifest.json", "-", "-"


def bad_known_run_other_period(folder: Path):
    # A copy of a LOADED run (GV-202601-FINAL) now claiming period 202602; RT's INPER follows,
    # so the extract is consistent in itself and only the identity rule is broken.
    shutil.rmtree(folder)
    shutil.copytree(SAMPLE / "GV-202601-FINAL", folder)
    header, rows = _rt(folder)
    i = header.index("INPER")
    for r in rows:
        r[i] = "202602"
    write_csv(folder / "RT.csv", header, rows)
    fix_manifest(folder, period="202602", pay_date="20260225")
    # The run_id is the manifest's: no CSV row. docs/cli-contract.md says '-'; the warehouse names
    # the manifest key run_id (tests/test_warehouse.py) — either is accepted here.
    return "manifest.json", "-", {"-", "run_id"}


def bad_known_run_other_type(folder: Path):
    shutil.rmtree(folder)
    shutil.copytree(SAMPLE / "GV-202601-SIM3", folder)
    fix_manifest(folder, run_type="SIM2")
    return "manifest.json", "-", {"-", "run_id"}


BAD_CASES = {
    "missing_file": bad_missing_file,
    "checksum_mismatch": bad_checksum,
    "missing_column": bad_missing_column,
    "amount_with_comma": bad_amount_comma,
    "amount_text": bad_amount_text,
    "impossible_date": bad_impossible_date,
    "empty_rt_regular_run": bad_empty_rt,
    "truncated_record": bad_truncated_record,
    "non_utf8": bad_non_utf8,
    "semicolon_delimiter": bad_semicolons,
    "unknown_run_type": bad_unknown_run_type,
    "known_run_id_other_period": bad_known_run_other_period,
    "known_run_id_other_run_type": bad_known_run_other_type,
}


@dataclass
class BadResult:
    expected: tuple
    proc: subprocess.CompletedProcess
    db: Path
    folder: Path
    digest: str
    last_delivery: list[tuple]


def job_bad_input(sample: Sample, d: Path, corrupt) -> BadResult:
    folder = d / "landing" / f"delivery-{d.name}"
    shutil.copytree(SAMPLE / NEW_RUN, folder)
    expected = corrupt(folder)
    db = copy_db(sample.db, d / "wh")
    p = verify(folder, db, d / "wh" / "out")
    last = query(db, "SELECT outcome, reason, quarantine_path FROM deliveries ORDER BY delivery_id DESC LIMIT 1")
    return BadResult(expected, p, db, folder, digest(db), last)


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_is_rejected_with_exit_2(case: str, jobs, sample: Sample):
    r: BadResult = jobs[case].result()
    file, line, column = r.expected
    assert r.proc.returncode == 2, describe(r.proc)
    msg = last_line(r.proc.stderr)
    m = MESSAGE_RE.match(msg)
    assert m, f"stderr's last line is not 'file:line:column: reason': {msg!r}"
    assert m["file"] == file, msg
    assert m["line"] == line, msg
    if isinstance(column, set):
        assert m["column"] in column, msg
    else:
        assert m["column"] == column, msg
    # nothing of that run entered the warehouse; what was there is untouched
    assert r.digest == sample.digest, "a rejected delivery changed the warehouse"
    assert r.last_delivery and r.last_delivery[0][0] == "rejected", r.last_delivery
    # the delivery is kept in quarantine next to the warehouse, with its reason
    qdir = r.db.parent / "quarantine"
    entries = [p for p in qdir.iterdir() if p.is_dir()] if qdir.is_dir() else []
    assert len(entries) == 1, f"expected one quarantine entry in {qdir}: {entries}"
    reason = (entries[0] / "REASON.txt").read_text(encoding="utf-8")
    assert msg in reason, reason
    assert (entries[0] / "manifest.json").exists()
    for name in CSV_FILES:
        if (r.folder / name).exists():
            assert (entries[0] / name).read_bytes() == (r.folder / name).read_bytes(), name
    assert not (r.db.parent / "out" / "exceptions.csv").exists()


# ------------------------------------------------------------------------------ 4. correction

CORRECTED_RUN = "GV-202601-SIM1"


def job_correction(sample: Sample, d: Path) -> dict:
    """CORRECTED_RUN re-delivered with one 1000 line 10.00 higher (its totals following)."""
    flagged = {r["PERNR"] for r in exceptions(sample.result(CORRECTED_RUN).out)}
    folder = d / "landing" / "corrected-delivery"
    shutil.copytree(SAMPLE / CORRECTED_RUN, folder)
    header, rows = read_csv(folder / "RT.csv")
    ix = {c: header.index(c) for c in header}
    pernr = next(r[ix["PERNR"]] for r in rows if r[ix["LGART"]] == "1000" and r[ix["PERNR"]] not in flagged)
    for r in rows:
        if (r[ix["PERNR"]] == pernr and r[ix["FPPER"]] == r[ix["INPER"]]
                and r[ix["LGART"]] in {"1000", "/101", "/550", "/560"}):
            r[ix["BETRG"]] = money(cents(r[ix["BETRG"]]) + 1000)
    write_csv(folder / "RT.csv", header, rows)
    fix_manifest(folder)
    db = copy_db(sample.db, d / "wh")
    p = verify(folder, db, d / "out")
    q = {
        "runs": query(db, "SELECT version, is_current FROM runs WHERE run_id = ? ORDER BY version", [CORRECTED_RUN]),
        "old": query(db, "SELECT superseded FROM findings WHERE run_id = ? AND run_version = 1", [CORRECTED_RUN]),
        "new": query(db, "SELECT count(*) FROM findings WHERE run_id = ? AND run_version = 2 AND NOT superseded",
                     [CORRECTED_RUN])[0][0],
        "deliveries": query(db, "SELECT outcome, run_version FROM deliveries WHERE run_id = ? ORDER BY delivery_id",
                            [CORRECTED_RUN]),
    }
    return {"pernr": pernr, "proc": p, "out": d / "out", **q}


def test_changed_content_for_known_run_id_is_a_correction(jobs, sample: Sample):
    r = jobs["correction"].result()
    original = exceptions(sample.result(CORRECTED_RUN).out)
    assert original, f"{CORRECTED_RUN} must have findings for this test"
    assert r["proc"].returncode == 0, describe(r["proc"])
    new = exceptions(r["out"])
    assert any(x["PERNR"] == r["pernr"] and x["LGART"] == "1000" for x in new), \
        f"the changed 1000 line of {r['pernr']} is not a finding of the correction"
    assert r["runs"] == [(1, False), (2, True)]
    assert len(r["old"]) == len(original), "the replaced version's findings must be kept"
    assert all(s for (s,) in r["old"]), "the replaced version's findings must be superseded"
    assert r["new"] == len(new)
    assert ("replaced", 2) in r["deliveries"], r["deliveries"]


# ------------------------------------------------------------------------------ 5. content errors are findings


def job_new_run_plain(sample: Sample, d: Path) -> dict:
    """NEW_RUN as delivered, verified into a copy of the module's warehouse."""
    p = verify(SAMPLE / NEW_RUN, copy_db(sample.db, d / "wh"), d / "out")
    return {"proc": p, "out": d / "out"}


@pytest.fixture(scope="module")
def new_run_plain(jobs) -> dict:
    r = jobs["plain"].result()
    assert r["proc"].returncode == 0, describe(r["proc"])
    return r


def job_content_errors(sample: Sample, d: Path, plain) -> dict:
    """NEW_RUN with three content errors (manifest fixed), verified into a copy of the
    module's warehouse. Each error is put on a staff member with no injected error and no
    finding in NEW_RUN as delivered, so that any finding on them comes from the change."""
    folder = d / "landing" / "delivery"
    shutil.copytree(SAMPLE / NEW_RUN, folder)
    with open(SAMPLE / "truth.csv", encoding="utf-8", newline="") as f:
        injected = {r["PERNR"] for r in csv.DictReader(f) if r["run_id"] == NEW_RUN}
    header, rows = read_csv(folder / "RT.csv")
    ix = {c: header.index(c) for c in header}
    pa8_header, pa8 = read_csv(folder / "PA0008.csv")
    p8 = {c: pa8_header.index(c) for c in pa8_header}
    open_pa8 = {r[p8["PERNR"]] for r in pa8 if r[p8["ENDDA"]] == "99991231"}
    with_1000 = {r[ix["PERNR"]] for r in rows if r[ix["LGART"]] == "1000" and r[ix["FPPER"]] == r[ix["INPER"]]}
    p_plain = plain.result()
    flagged = {x["PERNR"] for x in exceptions(p_plain["out"])} if p_plain["proc"].returncode == 0 else set()
    candidates = sorted((with_1000 & open_pa8) - injected - flagged)
    dup, totals, overlap = candidates[10], candidates[40], candidates[70]

    # the same RT line twice
    line = next(r for r in rows if r[ix["PERNR"]] == dup and r[ix["LGART"]] == "1000")
    rows.insert(rows.index(line) + 1, list(line))
    # /560 no longer equal to /550
    paid = next(r for r in rows if r[ix["PERNR"]] == totals and r[ix["LGART"]] == "/560")
    paid[ix["BETRG"]] = money(cents(paid[ix["BETRG"]]) + 700)
    write_csv(folder / "RT.csv", header, rows)
    # overlapping PA0008 records: same grade and step, a second record inside the open one
    current = next(r for r in pa8 if r[p8["PERNR"]] == overlap and r[p8["ENDDA"]] == "99991231")
    extra = list(current)
    extra[p8["BEGDA"]], extra[p8["ENDDA"]] = "20251201", "20261130"
    pa8.insert(pa8.index(current) + 1, extra)
    write_csv(folder / "PA0008.csv", pa8_header, pa8)
    fix_manifest(folder)

    p = verify(folder, copy_db(sample.db, d / "wh"), d / "out")
    return {"dup": dup, "totals": totals, "overlap": overlap, "proc": p,
            "rows": exceptions(d / "out") if p.returncode == 0 else []}


@pytest.fixture(scope="module")
def content_errors(jobs, new_run_plain) -> dict:
    r = jobs["content"].result()
    assert r["proc"].returncode == 0, describe(r["proc"])
    plain = {x["PERNR"] for x in exceptions(new_run_plain["out"])}
    for key in ("dup", "totals", "overlap"):
        assert r[key] not in plain, f"{r[key]} already has findings in the unchanged run: pick another"
    return r


def test_duplicate_rt_line_is_a_finding(content_errors):
    s = content_errors["dup"]
    mine = [r for r in content_errors["rows"] if r["PERNR"] == s]
    assert mine, f"no exception for {s} (duplicate RT line)"
    assert any(r["LGART"] == "1000" and r["category"].startswith("duplicate") for r in mine), mine


def test_totals_not_adding_up_is_a_finding(content_errors):
    s = content_errors["totals"]
    mine = [r for r in content_errors["rows"] if r["PERNR"] == s]
    assert mine, f"no exception for {s} (/560 off by 7.00)"
    assert any(r["LGART"] == "/560" for r in mine), mine


def test_overlapping_pa0008_records_are_a_finding(content_errors):
    s = content_errors["overlap"]
    mine = [r for r in content_errors["rows"] if r["PERNR"] == s]
    assert mine, f"no exception for {s} (overlapping PA0008 records)"


# ------------------------------------------------------------------------------ 6. no leaning on the simulator


def test_findings_do_not_depend_on_order_names_pernrs_or_opaque_fields(sample: Sample, transformed: Transformed):
    inv = {v: k for k, v in transformed.pmap.items()}
    assert len(transformed.chain) == N_HISTORY
    compared = 0
    for name, v in zip(RUNS[:N_HISTORY], transformed.chain):
        assert v.proc.returncode == 0, f"transformed {name}: {describe(v.proc)}"
        run_id = manifest(SAMPLE / name)["run_id"]
        got_rows = check_exceptions_file(v.out / "exceptions.csv", run_id)
        want_rows = exceptions(sample.result(name).out)

        def back(text: str) -> str:
            return re.sub(r"(?<![0-9])[0-9]{8}(?![0-9])", lambda m: inv.get(m.group(), m.group()), text)

        got = Counter(tuple(inv[r["PERNR"]] if c == "PERNR" else r[c] for c in COMPARED) + (back(r["explanation"]),)
                      for r in got_rows)
        want = Counter(tuple(r[c] for c in COMPARED) + (r["explanation"],) for r in want_rows)
        assert got == want, (f"{name}: findings differ after the transform\n"
                             f"only original: {sorted((want - got).elements())[:10]}\n"
                             f"only transformed: {sorted((got - want).elements())[:10]}")
        compared += len(want_rows)
    assert compared > 0


def job_opaque_changed(sample: Sample, d: Path) -> dict:
    """NEW_RUN with new random SEQNR on every RT line, and MASSG (PA0000) and KOSTL (PA0001)
    values that differ from the ones its history carried, on every record."""
    rng = random.Random(7)
    folder = d / "landing" / "opaque"
    shutil.copytree(SAMPLE / NEW_RUN, folder)
    for file, column in (("RT.csv", "SEQNR"), ("PA0000.csv", "MASSG"), ("PA0001.csv", "KOSTL")):
        header, rows = read_csv(folder / file)
        i = header.index(column)
        for r in rows:
            if column == "SEQNR":
                r[i] = _token(rng, "0123456789", 1, 12)
            else:
                r[i] = "" if r[i] and rng.random() < 0.2 else "Z" + _token(rng, "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", 3, 9)
        write_csv(folder / file, header, rows)
    fix_manifest(folder)
    p = verify(folder, copy_db(sample.db, d / "wh"), d / "out")
    return {"proc": p, "out": d / "out"}


def test_opaque_fields_changed_since_history_change_no_finding(jobs, new_run_plain):
    """SEQNR, MASSG and KOSTL have no meaning (docs/design.md): a run whose values of them all
    differ from those of its history (a reason code or cost centre corrected in place on
    every record) has exactly the findings of the run as delivered."""
    r = jobs["opaque"].result()
    assert r["proc"].returncode == 0, describe(r["proc"])
    got, want = exceptions(r["out"]), exceptions(new_run_plain["out"])
    key = lambda x: tuple(x[c] for c in (*COMPARED, "explanation"))  # noqa: E731
    extra = Counter(map(key, got)) - Counter(map(key, want))
    missing = Counter(map(key, want)) - Counter(map(key, got))
    assert not extra and not missing, (f"only with changed opaque fields: {sorted(extra)[:8]}\n"
                                       f"only as delivered: {sorted(missing)[:8]}")
    assert (r["out"] / "exceptions.csv").read_bytes() == (new_run_plain["out"] / "exceptions.csv").read_bytes()


# ------------------------------------------------------------------------------ 7. exit 3


def job_dq_blocked(sample: Sample, d: Path) -> dict:
    """NEW_RUN with every RT line of 40 % of its staff dropped (manifest fixed)."""
    folder = d / "landing" / "partial"
    shutil.copytree(SAMPLE / NEW_RUN, folder)
    header, rows = read_csv(folder / "RT.csv")
    i = header.index("PERNR")
    staff = sorted({r[i] for r in rows})
    dropped = set(random.Random(3).sample(staff, int(len(staff) * 0.4)))
    write_csv(folder / "RT.csv", header, [r for r in rows if r[i] not in dropped])
    fix_manifest(folder)
    db = copy_db(sample.db, d / "wh")
    p = verify(folder, db, d / "out")
    loaded = query(db, "SELECT count(*) FROM runs WHERE run_id = ?", [manifest(folder)["run_id"]])[0][0]
    return {"proc": p, "out": d / "out", "dropped": dropped, "loaded": loaded}


def test_large_share_of_staff_missing_stops_detection_with_exit_3(jobs):
    r = jobs["dq"].result()
    p, out = r["proc"], r["out"]
    assert p.returncode == 3, describe(p)
    assert (out / "exceptions.csv").read_bytes() == (HEADER + "\n").encode()
    reports = [out / n for n in ("data_quality.md", "summary.md") if (out / n).exists()]
    assert reports, f"no data-quality report in {out}: {list(out.iterdir())}"
    text = "\n".join(x.read_text(encoding="utf-8") for x in reports)
    assert "/560" in text and str(len(r["dropped"])) in text, text  # why: staff without pay
    assert r["loaded"] == 1, "exit 3: the run is loaded"
    assert last_line(p.stderr), "exit 3 should say why on stderr"
