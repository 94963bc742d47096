"""The sample warehouse the notebooks read by default: the committed sample
(data_samples/gv-300) verified into its own warehouse file, built on first use."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from paywatch.warehouse import Warehouse
from paywatch.warehouse.analysis import runs_present

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "data_samples" / "gv-300"


def default_sample_db() -> Path:
    """`$PAYWATCH_HOME/sample/warehouse.duckdb`, or `<repository>/paywatch-data/sample/...`
    when PAYWATCH_HOME is not set (never the real warehouse of PAYWATCH_HOME)."""
    home = os.environ.get("PAYWATCH_HOME")
    base = Path(home) if home else SAMPLE_DIR.parent.parent / "paywatch-data"
    return base / "sample" / "warehouse.duckdb"


def sample_runs(sample: Path = SAMPLE_DIR) -> list[str]:
    """Run folders of the committed sample, in delivery order (runs.txt)."""
    listing = Path(sample) / "runs.txt"
    if not listing.exists():
        raise FileNotFoundError(f"no sample at {sample} (runs.txt missing): pass DB = a warehouse file instead")
    return listing.read_text(encoding="utf-8").split()


def _missing_runs(con: duckdb.DuckDBPyConnection, db: Path, runs: list[str]) -> list[str]:
    """Sample runs not yet verified in the warehouse; refuses a warehouse with other runs."""
    present, verified = runs_present(con)
    foreign = present - set(runs)
    if foreign:
        raise ValueError(f"{db} holds runs that are not in the sample ({', '.join(sorted(foreign)[:3])}): "
                         "give the sample its own warehouse file")
    return [r for r in runs if r not in verified]


def sample_warehouse(path: str | os.PathLike | None = None, *, sample: str | os.PathLike | None = None,
                     wait_seconds: float = 600.0) -> Path:
    """The warehouse of the committed sample (data_samples/gv-300), built on first use.

    Every run of runs.txt is verified in that order (read, load, validate, detect, triage:
    the pipeline's own stage functions) into `path` (default `default_sample_db()`) through
    the warehouse's writer (the single-writer lock). A warehouse that already holds every
    run is reused as it is, read only (reviewers' decisions recorded in it stay); an
    interrupted build is resumed. A file holding runs that are not the sample's is refused:
    this never writes sample data into a real warehouse.

    Not `verify_run`: that also writes reports, Data Docs and the outbox and mails them when
    SMTP is configured; the notebooks only read the warehouse. Findings carry the same
    configuration version as `paywatch verify --db`.
    """
    sample = Path(sample) if sample else SAMPLE_DIR
    runs = sample_runs(sample)
    wh = Warehouse.at(Path(path) if path else default_sample_db())
    if wh.exists:
        try:
            with wh.reader() as con:
                if not _missing_runs(con, wh.db, runs):
                    return wh.db
        except duckdb.IOException:
            pass  # being written (another build or a verify): wait for the writer's lock below
    with wh.writer(wait_seconds) as con:
        missing = _missing_runs(con, wh.db, runs)
        if missing:
            _build_sample(con, wh, sample, missing)
    return wh.db


def _build_sample(con: duckdb.DuckDBPyConnection, wh: Warehouse, sample: Path, runs: list[str]) -> None:
    """Verify `runs` into the sample warehouse, showing progress: the first build takes about
    two minutes (the data-quality checks of 13 runs), and a silent cell that long looks hung."""
    import sys

    from tqdm.std import tqdm  # a text bar: works in a notebook's output and on a terminal alike

    print(f"Building the sample warehouse {wh.db} (first use only: {len(runs)} runs, about 2 minutes; "
          "later runs of the notebook reuse it).", file=sys.stderr, flush=True)
    bar = tqdm(total=len(runs), desc="loading the checks", unit="run", file=sys.stderr, ncols=100,
               bar_format="{desc:<22} {bar} {n_fmt}/{total_fmt} [{elapsed}<{remaining}]")
    with bar:
        # Imported here: the pipeline pulls in every detector (scikit-learn), which readers never need.
        from paywatch.settings import load_settings
        from paywatch import pipeline

        cfg = load_settings(wh.paths.config)
        for name in runs:
            bar.set_description_str(name)
            loaded = pipeline.stage_load(con, pipeline.stage_read(sample / name), wh.paths)
            status, *_ = pipeline.process_loaded(con, loaded.run_id, loaded.run_version, cfg)
            if status != "verified":
                raise RuntimeError(f"sample run {name} was not verified ({status})")
            bar.update(1)
        bar.set_description_str("sample warehouse ready")


def warehouse_path(db: str | os.PathLike | None = None) -> Path:
    """The warehouse a notebook reads: `db` if given, else the sample warehouse."""
    if db is None:
        return sample_warehouse()
    path = Path(db)
    if not path.exists():
        raise FileNotFoundError(f"no warehouse at {path}")
    return path
