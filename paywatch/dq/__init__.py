"""Data-quality gate: Great Expectations suites run on frames taken from the warehouse.

- `frames`  builds the frames of a run from the warehouse (polars; pandas at the GX edge);
- `catalog` loads the expectation suites, JSON files versioned in `paywatch/dq/suites/`;
- `runner`  runs them with a file GX context next to the warehouse, and builds Data Docs;
- `docs`    copies the run's Data Docs into its report folder, self-contained (no CDN);
- `finance` writes the Finance data-quality report (one-page HTML and an .xlsx sheet).

The pipeline calls `run_checks` (stage validate) and `publish` (stage deliver). Critical
failures stop detection for the run; warnings are reported and detection goes on.
Great Expectations is imported only when a run is validated.
"""

from __future__ import annotations

import copy
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import duckdb

from detectors.base import DetectionInput
from paywatch.dq import catalog, frames
from paywatch.paths import Paths
from paywatch.warehouse.db import database_path

__all__ = ["run_checks", "publish", "with_suites_version", "project_dir", "suites_folder"]

DOCS_FOLDER = "data_docs"
log = logging.getLogger(__name__)


def project_dir(con: duckdb.DuckDBPyConnection) -> Path:
    """Folder holding the GX project (`<it>/gx`): the warehouse's folder (Paths.for_db)."""
    db = database_path(con)
    if db is None:
        return Path(tempfile.gettempdir()) / "paywatch-dq-memory"
    return Paths.for_db(db).home


def suites_folder(cfg: dict, con: duckdb.DuckDBPyConnection | None = None) -> Path:
    """Suites in use: env PAYWATCH_DQ_SUITES, `[quality] suites_dir` (relative to the
    warehouse folder, where paywatch.toml lives), or the suites shipped in the package."""
    base = project_dir(con) if con is not None else None
    return catalog.suites_dir(cfg.get("quality", {}), base)


def with_suites_version(cfg: dict, con: duckdb.DuckDBPyConnection | None = None) -> dict:
    """The configuration with `[quality] suites_version` = hash of the suites in use, so the
    configuration version (stored with findings and verifications) changes when a suite
    file is edited, and the run is validated again rather than answered from storage."""
    out = copy.deepcopy(cfg)
    out.setdefault("quality", {})["suites_version"] = catalog.suites_version(suites_folder(cfg, con))
    return out


def _marker(con, inp: DetectionInput, folder: Path) -> dict:
    from paywatch.warehouse import queries as q

    return {"run_id": inp.meta.run_id, "run_version": q.current_version(con, inp.meta.run_id),
            "suites_version": catalog.suites_version(folder)}


def run_checks(con: duckdb.DuckDBPyConnection, inp: DetectionInput, previous: DetectionInput | None,
               cfg: dict) -> list[dict]:
    """Every expectation of every suite on the run's frames; one check dict each."""
    from paywatch.dq import runner

    folder = suites_folder(cfg, con)
    suites = catalog.load_suites(folder)
    rf = frames.build(inp, previous, cfg.get("PW106", {}).get("lookback_months"))  # PW106's overlap window
    return runner.validate(rf, suites, project_dir(con), marker=_marker(con, inp, folder))


def publish(out: Path, con: duckdb.DuckDBPyConnection, inp: DetectionInput, checks: list[dict], blocked: bool,
            cfg: dict, revalidate: Callable[[], list[dict]] | None = None) -> dict[str, Path]:
    """Data Docs of the run into `<out>/data_docs/`, and the Finance data-quality report
    (`finance_dq.html`, `finance_dq.xlsx`) linking them. When the GX site shows another run
    (a repeated verify answered from storage), the suites are run again to rebuild it."""
    from paywatch.dq import docs, finance, runner

    folder = suites_folder(cfg, con)
    project = project_dir(con)
    written: dict[str, Path] = {}
    if checks and any(c.get("engine", "gx") == "gx" for c in checks):
        if runner.site_marker(project) != _marker(con, inp, folder) and revalidate is not None:
            revalidate()
        with runner.project_lock(project):
            if runner.site_marker(project) == _marker(con, inp, folder):
                try:
                    written["data_docs"] = docs.publish_site(runner.site_dir(project), Path(out) / DOCS_FOLDER)
                    docs.make_offline(runner.site_dir(project), back_bar=False)  # GX's working copy too
                except docs.DocsError as e:  # no page that loads from the web; the run itself stands
                    shutil.rmtree(Path(out) / DOCS_FOLDER, ignore_errors=True)
                    written.pop("data_docs", None)
                    log.warning("Data Docs not published: %s", e)
    try:
        texts = catalog.descriptions(catalog.load_suites(folder))
    except catalog.SuiteError:
        texts = {}
    written.update(finance.write(Path(out), con, inp.meta, checks, blocked, texts,
                                 docs=written.get("data_docs")))
    return written
