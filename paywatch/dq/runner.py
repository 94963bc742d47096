"""Run the expectation suites on a run's frames with Great Expectations (1.x, file context).

One GX project per warehouse (`<folder of the warehouse>/gx`), one context per process and
project. On each run the suites are synced from the suite files (add-or-update; skipped when
the project already holds the same content), every suite runs through its checkpoint (one
per frame: a checkpoint feeds the same dataframe to all its validation definitions), and
each expectation result becomes one check dict in the pipeline's shape
(`paywatch.pipeline.stage_validate`). Data Docs are built once, after the last checkpoint:
an `UpdateDataDocsAction` on each of the 13 checkpoints rebuilds the site 13 times, which
measured +3.5 s on a 10,000-staff run (2.2 s → 5.8 s for the suites alone).

The project's Data Docs site holds the latest run only: validation results and the site
are working files, emptied before each run; the run's copy goes to its report folder, and
the results themselves to the warehouse (`dq_results`). A marker file in the site says
which run (and which suites) it shows.

GX facts this relies on (see docs/stack-notes.md): importing GX takes seconds, so it
is imported here only, lazily; GX drops an invalid expectation from a suite with only a log
line, so the number of expectations is checked after building each suite; an expectation
that raises is reported by GX as failed with `exception_info`, and is reported here as
failed with the error in its detail — never as passed.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import html
import importlib
import importlib.util
import json
import os
import shutil
import sys
import threading
import types
import warnings
from pathlib import Path

import polars as pl

from paywatch.paths import make_private_dir
from paywatch.dq import catalog
from paywatch.dq.frames import RunFrames

DATASOURCE = "paywatch"
BATCH = "whole_frame"
SITE = "local_site"
MARKER = "paywatch_run.json"
SUITE_PAGES = "paywatch_suite_pages.json"  # in gx/: what the site's suite pages were rendered from
SAMPLE_SIZE = 10
SITE_CONFIG = {
    "class_name": "SiteBuilder",
    "show_how_to_buttons": False,
    "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": f"uncommitted/data_docs/{SITE}/"},
    "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    "site_section_builders": {"profiling": "0"},
}
SYNC_FORMAT = "2"  # bump when _sync changes what it stores
QUICK = "_quick"  # name suffix of a suite's first checkpoint (`_run_suite`)
QUICK_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 20}
_CONTEXTS: dict[Path, object] = {}
_SYNCED: dict[tuple[Path, str], str] = {}  # (project, suite name) -> hash of what was synced


class DQEngineError(RuntimeError):
    """The suites could not be run (GX setup, a suite GX rejects)."""


_IMPORT_LOCK = threading.Lock()


def _quiet_import():
    with _IMPORT_LOCK:  # one thread imports GX (a warm-up thread may be at it: `preload`)
        if "great_expectations.data_context" in sys.modules:
            return
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        # GX imports sre_constants (deprecated): importing it under `-W error` fails otherwise
        warnings.filterwarnings("ignore", message=r"module .sre_(constants|parse|compile). is deprecated",
                                category=DeprecationWarning)
        _defer_rfc3987_syntax()
        with _without_unused_imports():
            import great_expectations  # noqa: F401, PLC0415 - lazy: ~3 s with pandas and scipy


# what GX imports at its own import but never uses on Paywatch's path (`_without_unused_imports`)
HIDDEN_FROM_GX = ("sqlalchemy",)  # GX's SQL datasources: an optional extra GX does without
DEFERRED_FOR_GX = (
    "altair",  # charts of expect_column_kl_divergence_to_be_less_than only
    "jsonschema",  # expect_column_values_to_match_json_schema only (with its format checkers)
)


@contextlib.contextmanager
def _without_unused_imports():
    """While GX is imported, and only for the modules no one in the process has imported yet:
    `HIDDEN_FROM_GX` cannot be imported (GX's `compatibility` modules then take it for not
    installed, as in a GX installed without its SQL extra: Paywatch validates pandas frames
    only), and each of `DEFERRED_FOR_GX` is a stand-in that imports the real module on first
    use (GX imports altair at module level for one expectation's charts, which Paywatch
    never draws; jsonschema for one metric, with its format checkers). Together about a fifth
    of GX's import: SQLAlchemy, altair, narwhals, jsonschema, referencing, arrow. Once
    GX is imported both leave `sys.modules`, so anyone importing them later (Prefect imports
    SQLAlchemy) gets the real module; GX keeps its stand-in, which forwards to it. Nothing is
    hidden in a process that has imported Prefect (a flow run, the warm worker): another of its
    threads might import SQLAlchemy meanwhile, and such a process imports GX once anyway."""
    hidden = [name for name in HIDDEN_FROM_GX if name not in sys.modules and "prefect" not in sys.modules]
    deferred = [name for name in DEFERRED_FOR_GX if name not in sys.modules]
    stand_ins = {name: _stand_in(name) for name in deferred}
    for name in hidden:
        sys.modules[name] = None  # `import name` raises ImportError
    sys.modules.update(stand_ins)
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
        for name, stand_in in stand_ins.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]


def _stand_in(name: str) -> types.ModuleType:
    """A module object that imports `name` on its first attribute use and answers from it."""

    class _Deferred(types.ModuleType):
        def __getattr__(self, attr: str):
            if attr.startswith("__"):  # the import machinery probing (__path__, __spec__): not a use
                raise AttributeError(attr)
            if sys.modules.get(name) is self:
                del sys.modules[name]
            return getattr(importlib.import_module(name), attr)

    return _Deferred(name, f"stand-in: imports {name} on first use")


_RFC3987 = "rfc3987_syntax"


def _defer_rfc3987_syntax() -> None:
    """GX imports altair, altair imports jsonschema, and jsonschema's format checkers import
    `rfc3987_syntax` (when installed: Jupyter's dependencies bring it) only to check "iri"
    strings — and that module builds a Lark grammar at import: ~0.9 s of GX's ~2.8 s import,
    for a check Paywatch never asks for. Until jsonschema is imported, a stand-in takes its
    place whose `is_valid_syntax` imports the real module on first use (and any other
    attribute does the same): the same answers, paid only when asked."""
    if _RFC3987 in sys.modules or "jsonschema._format" in sys.modules:
        return
    try:
        if importlib.util.find_spec(_RFC3987) is None:
            return
    except (ImportError, ValueError):
        return

    class _Deferred(types.ModuleType):
        def __getattr__(self, name: str):
            if name.startswith("__"):  # the import machinery probing (__path__, __file__): not a use
                raise AttributeError(name)
            return getattr(_real(), name)

    stand_in = _Deferred(_RFC3987, "stand-in: imports rfc3987_syntax on first use")

    def _real():
        if sys.modules.get(_RFC3987) is stand_in:
            del sys.modules[_RFC3987]
        return importlib.import_module(_RFC3987)

    def is_valid_syntax(term: str, value: str) -> bool:
        return _real().is_valid_syntax(term, value)

    stand_in.is_valid_syntax = is_valid_syntax
    sys.modules[_RFC3987] = stand_in


def _import_gx():
    _quiet_import()
    import great_expectations as gx  # noqa: PLC0415

    _keep_compiled_templates()
    _configuration_once_per_call(gx)
    return gx


# the GX version whose Expectation methods `_configuration_once_per_call` was written against
# (great_expectations/expectations/expectation.py); any other version keeps its own
_GX_KWARGS_VERSION = "1.24.1"


def _configuration_once_per_call(gx) -> None:
    """GX's `Expectation._get_runtime_kwargs`, `_get_success_kwargs`, `_get_domain_kwargs` and
    `_get_success_kwarg` read `self.configuration` once per key they look up, and every read
    rebuilds the whole configuration (a pydantic `dict()` of the expectation and a new
    ExpectationConfiguration): about 7,300 rebuilds per validation of the 13 suites, a
    quarter of the validator's time. Here each call reads it once and looks the keys up in
    that: the same values, as the configuration is rebuilt from the same unchanged expectation
    every time. Only on the GX version these were written against (`_GX_KWARGS_VERSION`, in
    which no expectation overrides them); once per process."""
    from great_expectations.expectations.expectation import Expectation  # noqa: PLC0415

    if getattr(gx, "__version__", "") != _GX_KWARGS_VERSION or _PATCHED["kwargs"]:
        return
    from great_expectations.exceptions import InvalidExpectationKwargsError  # noqa: PLC0415
    from great_expectations.expectations import expectation as gx_expectation  # noqa: PLC0415

    gx_log = gx_expectation.logger
    parse_result_format = gx_expectation.parse_result_format

    def success_kwarg(self, kwargs: dict, key: str, default=None):
        if key in kwargs:
            return kwargs[key]
        field = self.__fields__.get(key)
        if field is not None:
            return field.default if not field.required else default
        gx_log.warning(f'_get_success_kwarg called with key "{key}", '
                       f"but it is not a known field of {type(self).__name__}")
        return default

    def domain_kwargs(self, kwargs: dict) -> dict:
        found = {key: kwargs.get(key, self._get_default_value(key)) for key in self.domain_keys}
        missing_kwargs = set(self.domain_keys) - set(found.keys())
        if missing_kwargs:
            raise InvalidExpectationKwargsError(f"Missing domain kwargs: {list(missing_kwargs)}")
        return found

    def success_kwargs(self, kwargs: dict) -> dict:
        domain = domain_kwargs(self, kwargs)
        found = {key: kwargs.get(key, self._get_default_value(key)) for key in self.success_keys}
        found.update(domain)
        return found

    def _get_runtime_kwargs(self, runtime_configuration=None) -> dict:
        runtime_configuration = runtime_configuration or {}
        kwargs = self.configuration.kwargs
        success = success_kwargs(self, kwargs)
        runtime_kwargs = {key: runtime_configuration.get(key, success_kwarg(self, kwargs, key))
                          for key in self.runtime_keys}
        runtime_kwargs.update(success)
        runtime_kwargs["result_format"] = parse_result_format(runtime_kwargs["result_format"])
        return runtime_kwargs

    Expectation._get_success_kwarg = lambda self, key, default=None: success_kwarg(
        self, self.configuration.kwargs, key, default)
    Expectation._get_domain_kwargs = lambda self: domain_kwargs(self, self.configuration.kwargs)
    Expectation._get_success_kwargs = lambda self: success_kwargs(self, self.configuration.kwargs)
    Expectation._get_runtime_kwargs = _get_runtime_kwargs
    _PATCHED["kwargs"] = True


_PATCHED = {"templates": False, "kwargs": False}  # GX patched in this process (below)


def _keep_compiled_templates() -> None:
    """Data Docs are rendered by GX's Jinja views, and every view makes a new Jinja
    environment, which compiles every template it uses again (GX's page, section and
    table templates: 35 compilations per build, about 40 % of building the site of a run).
    Give those environments one bytecode cache (`_TEMPLATES`): a template is compiled once
    per process (kept in memory: the warm worker, backfill), and once per GX project for
    fresh processes (kept on disk in the project, `context`: a cold `paywatch verify`). Jinja
    checks the template source's checksum (and its own and Python's bytecode version) on
    every load, so the pages are the ones GX renders without the cache. Once per process."""
    if _PATCHED["templates"]:
        return
    from great_expectations.render.view import view as gx_view  # noqa: PLC0415

    get_template = gx_view.DefaultJinjaView._get_template

    # not in __init__: GX passes a view only the arguments named in its __init__'s signature
    def _get_template(self, template_str):
        if self.env.bytecode_cache is None:
            self.env.bytecode_cache = _templates()
        return get_template(self, template_str)

    gx_view.DefaultJinjaView._get_template = _get_template
    _PATCHED["templates"] = True


_TEMPLATES: list = []  # the process's one template bytecode cache (`_templates`)


def _templates():
    """The template bytecode cache of this process: compiled templates in memory, in front of
    the current GX project's `uncommitted/jinja_bytecode/` folder (set by `context`)."""
    if _TEMPLATES:
        return _TEMPLATES[0]
    import jinja2  # noqa: PLC0415 - GX's dependency

    class CompiledTemplates(jinja2.BytecodeCache):
        def __init__(self) -> None:
            self._code: dict[str, tuple[str, object]] = {}
            self._lock = threading.Lock()
            self.on_disk: jinja2.FileSystemBytecodeCache | None = None

        def load_bytecode(self, bucket) -> None:
            with self._lock:
                hit = self._code.get(bucket.key)
                disk = self.on_disk
            if hit is not None and hit[0] == bucket.checksum:
                bucket.code = hit[1]
                return
            if disk is not None:
                with contextlib.suppress(Exception):  # a cache: unreadable is a miss (Jinja compiles)
                    disk.load_bytecode(bucket)  # Jinja's own checks: checksum, bytecode version
                if bucket.code is not None:
                    with self._lock:
                        self._code[bucket.key] = (bucket.checksum, bucket.code)

        def dump_bytecode(self, bucket) -> None:
            with self._lock:
                self._code[bucket.key] = (bucket.checksum, bucket.code)
                disk = self.on_disk
            if disk is not None:
                with contextlib.suppress(OSError):  # a cache: not written is only slower next time
                    disk.dump_bytecode(bucket)

    _TEMPLATES.append(CompiledTemplates())
    return _TEMPLATES[0]


def _templates_on_disk(project: Path) -> None:
    import jinja2  # noqa: PLC0415

    folder = project / "gx" / "uncommitted" / "jinja_bytecode"
    with contextlib.suppress(OSError):
        make_private_dir(folder)
        _templates().on_disk = jinja2.FileSystemBytecodeCache(str(folder))


def context(project: Path):
    """The file context of `project` (created on first use), one per process."""
    project = Path(project).resolve()
    gx = _import_gx()
    ctx = _CONTEXTS.get(project)
    if ctx is not None:
        try:  # make it GX's current project again (objects resolve through it)
            from great_expectations.data_context.data_context.context_factory import project_manager
            project_manager.set_project(ctx)
            _templates_on_disk(project)
            return ctx
        except ImportError:  # pragma: no cover - GX internals moved
            pass
    make_private_dir(project)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        ctx = gx.get_context(mode="file", project_root_dir=str(project))
    # GX re-reads this (empty) template for every config lookup — hundreds of YAML parses
    # per run; without the file it falls back to the environment at once
    (project / "gx" / "uncommitted" / "config_variables.yml").unlink(missing_ok=True)
    marker = project / "gx" / "paywatch_configured.json"
    if not marker.exists() or marker.read_text(encoding="utf-8") != json.dumps(SITE_CONFIG, sort_keys=True):
        from great_expectations.data_context.types.base import ProgressBarsConfig
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        ctx.enable_analytics(False)  # also saves the variables
        ctx.update_data_docs_site(SITE, SITE_CONFIG)
        marker.write_text(json.dumps(SITE_CONFIG, sort_keys=True), encoding="utf-8")
    _templates_on_disk(project)
    _CONTEXTS[project] = ctx
    return ctx


def site_dir(project: Path) -> Path:
    return Path(project).resolve() / "gx" / "uncommitted" / "data_docs" / SITE


def site_marker(project: Path) -> dict | None:
    p = site_dir(project) / MARKER
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _reset_working_files(project: Path, keep_suite_pages: bool = False) -> None:
    root = Path(project).resolve() / "gx" / "uncommitted"
    for sub in ("validations", f"data_docs/{SITE}"):
        path = root / sub
        if path.exists():
            for child in path.iterdir():
                if child.name.startswith(".ge_store_backend_id"):
                    continue
                if keep_suite_pages and sub != "validations" and child.name == "expectations":
                    continue
                shutil.rmtree(child) if child.is_dir() else child.unlink()


def _suite_pages_file(project: Path) -> Path:
    return project / "gx" / SUITE_PAGES


def _suite_pages_digest(gx, suites: list[catalog.Suite]) -> str:
    """What the site's suite pages (`expectations/`) are rendered from: the suites, GX's
    version and the site's configuration."""
    doc = json.dumps([SYNC_FORMAT, getattr(gx, "__version__", ""), SITE_CONFIG, [s.document for s in suites]],
                     sort_keys=True, default=str)
    return hashlib.sha256(doc.encode()).hexdigest()


def _suite_pages_current(project: Path, suites: list[catalog.Suite], digest: str) -> bool:
    """The site holds a page for every suite, rendered from these very suites by an earlier run."""
    try:
        if _suite_pages_file(project).read_text(encoding="utf-8") != digest:
            return False
    except OSError:
        return False
    pages = site_dir(project) / "expectations"
    return all((pages / f"{s.name}.html").is_file() for s in suites)


def _gx_suite(gx, suite: catalog.Suite):
    from great_expectations.core.expectation_suite import ExpectationSuite

    expectations = []
    for exp in suite.expectations:
        m = exp["meta"]
        desc = catalog.render(m["description"], catalog.threshold_context(exp["kwargs"]))
        expectations.append({
            "type": exp["type"], "kwargs": exp["kwargs"], "meta": m, "severity": m["severity"],
            # Data Docs show the description in place of GX's generic sentence
            "description": f"{m['name']} ({m['severity']}): {desc}",
        })
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        built = ExpectationSuite(name=suite.name, expectations=expectations, meta=dict(suite.document.get("meta", {})))
    if len(built.expectations) != len(suite.expectations):
        kept = {e.meta.get("name") for e in built.expectations}
        bad = [e["meta"]["name"] for e in suite.expectations if e["meta"]["name"] not in kept]
        raise DQEngineError(f"{suite.path}: Great Expectations rejected expectation(s) {', '.join(bad)} "
                            "(unknown type or invalid kwargs)")
    return built


def _synced_file(project: Path) -> Path:
    return project / "gx" / "paywatch_synced.json"


def _sync(ctx, gx, project: Path, suite: catalog.Suite, on_disk: dict):
    """Suite, asset, batch definition, validation definition and the suite's two checkpoints
    (add-or-update; skipped when the project already holds this content: `on_disk` is
    what an earlier run synced, by suite name). Returns (quick, detailed): see `_run_suite`."""
    digest = hashlib.sha256((SYNC_FORMAT + json.dumps(suite.document, sort_keys=True)).encode()).hexdigest()
    key = (project, suite.name)
    cp_name = f"paywatch_{suite.frame}"
    stored = project / "gx" / "expectations" / f"{suite.name}.json"
    if _SYNCED.get(key) == digest and on_disk.get(suite.name) == [digest, _file_sha(stored)]:
        return _checkpoints(ctx, cp_name)
    if on_disk.get(suite.name) == [digest, _file_sha(stored)]:  # and nobody edited GX's copy
        try:
            cps = _checkpoints(ctx, cp_name)
            _SYNCED[key] = digest
            return cps
        except Exception:  # noqa: BLE001 - missing or unreadable: sync again below
            pass
    gx_suite = ctx.suites.add_or_update(_gx_suite(gx, suite))
    ds = _datasource(ctx)
    try:
        asset = ds.get_asset(suite.frame)
    except LookupError:
        asset = ds.add_dataframe_asset(suite.frame)
    try:
        batch = asset.get_batch_definition(BATCH)
    except (KeyError, LookupError, ValueError):
        batch = asset.add_batch_definition_whole_dataframe(BATCH)
    vd = ctx.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=cp_name, data=batch, suite=gx_suite))
    complete = {
        "result_format": "COMPLETE",
        "unexpected_index_column_names": [*suite.key_columns, "record"],
        "return_unexpected_index_query": False,
        "partial_unexpected_count": 20,
    }
    detailed = ctx.checkpoints.add_or_update(gx.Checkpoint(
        name=cp_name, validation_definitions=[vd], result_format=complete, actions=[]))
    quick = ctx.checkpoints.add_or_update(gx.Checkpoint(
        name=cp_name + QUICK, validation_definitions=[vd], result_format=QUICK_FORMAT, actions=[]))
    _SYNCED[key] = digest
    on_disk[suite.name] = [digest, _file_sha(stored)]
    return quick, detailed


def _checkpoints(ctx, cp_name: str):
    return ctx.checkpoints.get(cp_name + QUICK), ctx.checkpoints.get(cp_name)


def _run_suite(cps, frame: pl.DataFrame, run_id, detailed_first: bool = False):
    """The suite's results on `frame` (and their key in GX's results store), through its checkpoints: first the quick one (GX's
    BASIC result format: counts and a sample, no row indexes — a quarter less of GX's
    per-expectation work); when any expectation met an unexpected row or failed, the
    detailed one (COMPLETE: the failing rows' keys and record numbers, which the checks'
    staff counts and samples and the Data Docs' tables are made of) replaces that result
    (same run id and batch: the same key in the results store). A suite that passes
    cleanly has no row to show, so its checks are the same either way. With
    `detailed_first` (the suite met unexpected rows when this project last validated it:
    `_ROWS_FILE`) the detailed one runs alone — what the two would have stored, less the
    quick pass a suite that keeps failing would throw away.

    A checkpoint is run as `Checkpoint.run` runs it, less its own freshness pass (every
    suite, validation definition and checkpoint read back from the stores and compared:
    about a sixth of a validation), which its validation definition's `run` does again
    anyway: the validation definition runs with the checkpoint's id and result format and
    stores its result under the same key; the checkpoints have no actions. On the GX
    version `_run_definition` was written against, the validation definition's own
    freshness pass is left out too (`_sync` keeps GX's copies equal to the suite files)."""
    from great_expectations.data_context.types.resource_identifiers import (  # noqa: PLC0415
        ExpectationSuiteIdentifier, ValidationResultIdentifier)

    quick, detailed = cps
    pdf = html_safe(frame).to_pandas()
    for cp in ((detailed,) if detailed_first else (quick, detailed)):
        (vd,) = cp.validation_definitions
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            suite_result = _run_definition(vd, cp, pdf, run_id)
        if not any(_needs_rows(r) for r in suite_result.results):
            break
    key = ValidationResultIdentifier(expectation_suite_identifier=ExpectationSuiteIdentifier(name=vd.suite.name),
                                     run_id=run_id, batch_identifier=suite_result.batch_id)
    return key, suite_result


# the GX version whose `ValidationDefinition.run` `_run_definition` repeats (less its freshness pass)
_GX_RUN_VERSION = "1.24.1"
FRESHNESS_PASS = {"skip": True}  # False: GX's own `ValidationDefinition.run` (tests compare both)


def _run_definition(vd, cp, pdf, run_id):
    """`vd.run(checkpoint_id=cp.id, batch_parameters={"dataframe": pdf}, result_format=cp.result_format,
    run_id=run_id)`: on GX 1.24.1 the same steps, less `is_fresh` (the suite, batch definition
    and validation definition read back from their stores and compared with these objects:
    about 5 % of a validation, for copies `_sync` keeps equal to the suite files)."""
    import great_expectations as gx  # noqa: PLC0415

    if not FRESHNESS_PASS["skip"] or getattr(gx, "__version__", "") != _GX_RUN_VERSION:
        return vd.run(checkpoint_id=cp.id, batch_parameters={"dataframe": pdf}, expectation_parameters={},
                      result_format=cp.result_format, run_id=run_id)
    from great_expectations.core import validation_definition as gx_vd  # noqa: PLC0415

    vd._record_suite_owner(gx_vd.owner_from_batch_definition(vd.data))  # as `is_fresh` does first
    validator = gx_vd.Validator(batch_definition=vd.batch_definition, batch_parameters={"dataframe": pdf},
                                result_format=cp.result_format)
    results = validator.validate_expectation_suite(vd.suite, {})
    results.meta["validation_id"] = vd.id
    results.meta["checkpoint_id"] = cp.id
    results.meta["run_id"] = run_id
    results.meta["validation_time"] = run_id.run_time
    results.meta["batch_parameters"] = {"dataframe": gx_vd.DATAFRAME_REPLACEMENT_STR}
    suite_id, result_id = vd._get_expectation_suite_and_validation_result_ids(validator=validator, run_id=run_id)
    vd._validation_results_store.store_validation_results(
        suite_validation_result=results, suite_validation_result_identifier=result_id,
        expectation_suite_identifier=suite_id)
    return results


DETAILED_FIRST = {"on": True}  # False: every suite through its quick checkpoint first (tests compare both)
_ROWS_FILE = "paywatch_rows.json"  # in gx/: {suite name: its last validation met unexpected rows}


def _rows_file(project: Path) -> Path:
    return project / "gx" / _ROWS_FILE


# False (or PAYWATCH_DQ_REUSE=0): every suite validated by GX on every run (tests compare both)
REUSE = {"on": os.environ.get("PAYWATCH_DQ_REUSE", "1") != "0"}
# (project, suite name) -> (what it was validated on: `_same_as_before`, GX's result): the last one only
_REUSED: dict[tuple[Path, str], tuple[tuple, object]] = {}


def _same_as_before(gx, project: Path, suite: catalog.Suite, frame: pl.DataFrame) -> tuple:
    """What a suite's result depends on: the suite (as `_sync` stores it), GX's version and
    the frame's content — its schema and values, as Arrow IPC bytes hashed, the very values
    `_run_suite` hands to GX (`html_safe`). Equal on a frame GX validated earlier in this
    process on this project: GX, given the same expectations and the same data, gives the
    same result (it records the same `pandas_data_fingerprint` in the batch markers)."""
    import io  # noqa: PLC0415

    buf = io.BytesIO()
    html_safe(frame).write_ipc(buf, compression="uncompressed")
    return (SYNC_FORMAT, json.dumps(suite.document, sort_keys=True), getattr(gx, "__version__", ""),
            hashlib.sha256(buf.getbuffer()).hexdigest())


def _reuse(ctx, earlier, run_id):
    """GX's result of an identical suite on an identical frame (`_REUSED`), as this run's: the
    run's id and validation time, the batch's load time now (its data fingerprint is the
    same), stored under this run's key in the results store like a result GX has just
    computed — so Data Docs and the checks show this run, with the expectations' outcomes
    GX computed on the same data. A warm process (the warm worker, backfill) verifying a
    run whose reference tables or master data are unchanged skips GX's per-expectation work
    for those suites."""
    import datetime  # noqa: PLC0415

    from great_expectations.data_context.types.resource_identifiers import (  # noqa: PLC0415
        ExpectationSuiteIdentifier, ValidationResultIdentifier)

    result = copy.deepcopy(earlier)
    result.meta["run_id"] = run_id
    result.meta["validation_time"] = run_id.run_time
    markers = result.meta.get("batch_markers")
    if isinstance(markers, dict) and "ge_load_time" in markers:
        markers["ge_load_time"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    suite_id = ExpectationSuiteIdentifier(name=result.suite_name)
    key = ValidationResultIdentifier(expectation_suite_identifier=suite_id, run_id=run_id,
                                     batch_identifier=result.batch_id)
    ctx.validation_results_store.store_validation_results(
        suite_validation_result=result, suite_validation_result_identifier=key, expectation_suite_identifier=suite_id)
    return key, result


def _needs_rows(evr) -> bool:
    res = evr.result or {}
    return not evr.success or bool(res.get("unexpected_count")) or bool(_exception(evr).get("raised_exception"))


def _exception(evr) -> dict:
    """GX's exception info of a result (`raised_exception`, `exception_message`, ...)."""
    exc = evr.exception_info or {}
    if exc and "raised_exception" not in exc:  # {metric id: {...}} shape: the first that raised
        exc = next((v for v in exc.values() if isinstance(v, dict) and v.get("raised_exception")), {})
    return exc


def _file_sha(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _datasource(ctx):
    try:
        return ctx.data_sources.get(DATASOURCE)
    except (KeyError, LookupError, ValueError):
        return ctx.data_sources.add_pandas(DATASOURCE)


@contextlib.contextmanager
def project_lock(project: Path):
    """One validation at a time per GX project (two warehouses may share a folder)."""
    path = Path(project).resolve() / "gx" / ".paywatch.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def validate(rf: RunFrames, suites: list[catalog.Suite], project: Path, marker: dict | None = None) -> list[dict]:
    """Run every suite on its frame; one check dict per expectation, in suite-file order.
    Data Docs of this run are left in `site_dir(project)` with `marker` written next to them."""
    project = Path(project).resolve()
    gx = _import_gx()
    with project_lock(project):
        ctx = context(project)
        return _validate(ctx, gx, rf, suites, project, marker)


def _validate(ctx, gx, rf: RunFrames, suites: list[catalog.Suite], project: Path, marker: dict | None) -> list[dict]:
    # the suite pages of the site are kept from the last run when the suites are the same:
    # only this run's validation pages and the index are rendered (half of the Data Docs' pages)
    pages_digest = _suite_pages_digest(gx, suites)
    keep_pages = _suite_pages_current(project, suites, pages_digest)
    _suite_pages_file(project).unlink(missing_ok=True)  # written again once the site is built
    _reset_working_files(project, keep_suite_pages=keep_pages)
    from great_expectations.core.run_identifier import RunIdentifier
    run_id = RunIdentifier(run_name=rf.run_id)
    try:
        on_disk = json.loads(_synced_file(project).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        on_disk = {}
    before = dict(on_disk)
    try:
        rows_before = json.loads(_rows_file(project).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        rows_before = {}
    rows = {}
    checks: list[dict] = []
    keys = []
    for suite in suites:
        if suite.frame not in rf.frames:
            raise DQEngineError(f"{suite.path}: no frame {suite.frame!r} to validate")
        frame = rf.frames[suite.frame]
        missing = [c for c in suite.key_columns if c not in frame.columns]
        if missing:
            raise DQEngineError(f"{suite.path}: key columns {missing} are not in frame {suite.frame!r}")
        cps = _sync(ctx, gx, project, suite, on_disk)
        same = _same_as_before(gx, project, suite, frame)
        reused = _REUSED.get((project, suite.name)) if REUSE["on"] else None
        if reused is not None and reused[0] == same:
            key, suite_result = _reuse(ctx, reused[1], run_id)
        else:
            key, suite_result = _run_suite(cps, frame, run_id,
                                           detailed_first=DETAILED_FIRST["on"] and rows_before.get(suite.name) is True)
            _REUSED[(project, suite.name)] = (same, suite_result)  # read only from here on; `_reuse` copies it
        rows[suite.name] = any(_needs_rows(r) for r in suite_result.results)
        keys.append(key)
        by_name = {r.expectation_config.meta.get("name"): r for r in suite_result.results}
        for exp in suite.expectations:
            evr = by_name.get(exp["meta"]["name"])
            if evr is None:
                raise DQEngineError(f"{suite.path}: no result for expectation {exp['meta']['name']!r}")
            checks.append(to_check(evr, exp, suite, frame, rf))
    if on_disk != before:
        _synced_file(project).write_text(json.dumps(on_disk, sort_keys=True, indent=1), encoding="utf-8")
    if rows != rows_before:
        _rows_file(project).write_text(json.dumps(rows, sort_keys=True, indent=1), encoding="utf-8")
    site = site_dir(project)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        ctx.build_data_docs(site_names=[SITE], resource_identifiers=keys if keep_pages else None)
        if keep_pages and not _validation_pages_built(site, len(keys)):  # pragma: no cover - GX changed
            ctx.build_data_docs(site_names=[SITE])
    if not (site / "index.html").exists():
        raise DQEngineError(f"Great Expectations built no Data Docs in {site}")
    _suite_pages_file(project).write_text(pages_digest, encoding="utf-8")
    (site / MARKER).write_text(json.dumps(marker or {}, sort_keys=True), encoding="utf-8")
    return checks


def _validation_pages_built(site: Path, count: int) -> bool:
    folder = site / "validations"
    return folder.is_dir() and sum(1 for _ in folder.rglob("*.html")) >= count


# ------------------------------------------------------------------------------ Data Docs safety

_HTML_SPECIAL = r"[&<>\"']"


def html_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame GX validates, with HTML-special characters of text values escaped: GX's Data
    Docs put unexpected values into the page as they are, so a WERKS `<img onerror=…>` would
    run in the reader's browser. Escaping changes no verdict: every code the suites accept is
    plain text, and a value holding `<` is outside every value set and pattern either way.
    Results read back from GX are unescaped (`_plain`)."""
    exprs = []
    for name, dtype in frame.schema.items():
        if dtype == pl.String and frame[name].str.contains(_HTML_SPECIAL).any():
            c = pl.col(name)
            for ch, ent in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&#x27;")):
                c = c.str.replace_all(ch, ent, literal=True)
            exprs.append(c.alias(name))
    return frame.with_columns(exprs) if exprs else frame


def _plain(value):
    """A value GX returns, as the data held it (see `html_safe`)."""
    if isinstance(value, str):
        return html.unescape(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# ------------------------------------------------------------------------------ results → checks

def _records(result: dict) -> list[int]:
    rows = result.get("unexpected_index_list") or []
    return [int(r["record"]) for r in rows if isinstance(r, dict) and r.get("record") is not None]


def _fmt_list(values, limit: int = SAMPLE_SIZE) -> str:
    vals = [str(v) for v in values if v is not None]
    text = ", ".join(vals[:limit])
    return text + (f" and {len(vals) - limit} more" if len(vals) > limit else "")


def to_check(evr, exp: dict, suite: catalog.Suite, frame: pl.DataFrame, rf: RunFrames) -> dict:
    """One expectation result in the pipeline's check shape (plus engine, suite, description)."""
    meta, kwargs = exp["meta"], exp["kwargs"]
    res = dict(evr.result or {})
    exc = _exception(evr)
    raised = bool(exc.get("raised_exception"))
    success = bool(evr.success) and not raised
    n_bad = int(res.get("unexpected_count") or 0)
    total = res.get("element_count")
    bad = frame.filter(pl.col("record").is_in(_records(res))) if n_bad else frame.head(0)
    if "pernr" in frame.columns:
        staff = bad["pernr"].drop_nulls().n_unique()
        sample = sorted({str(v) for v in bad["pernr"].to_list() if v is not None})[:SAMPLE_SIZE]
    else:
        col = suite.staff_count_column
        staff = int(bad[col].sum()) if col and col in bad.columns and bad.height else 0
        keys = [c for c in suite.key_columns if c in bad.columns]
        sample = sorted({"/".join(str(v) for v in row) for row in bad.select(keys).iter_rows()})[:SAMPLE_SIZE] \
            if keys else []
    show = meta.get("show_column")
    values = sorted({str(v) for v in bad[show].to_list() if v is not None}) if show and show in bad.columns else []
    observed_value = _plain(res.get("observed_value"))
    details = res.get("details") if isinstance(res.get("details"), dict) else {}
    missing = _plain(list(res.get("partial_missing_list") or (details.get("mismatched") or {}).get("missing") or []))
    if not missing and isinstance(observed_value, list) and not success:
        wanted = kwargs.get("value_set") or kwargs.get("column_set") or []
        missing = sorted(set(wanted) - set(observed_value))
    missing = sorted(str(m) for m in missing)
    ctx = {
        **catalog.threshold_context(kwargs),
        "unexpected_count": n_bad, "element_count": total if total is not None else frame.height,
        "unexpected_share": (n_bad / total) if total else 0.0, "staff_affected": staff,
        "values": _fmt_list(values), "missing": _fmt_list(missing), "sample": _fmt_list(sample),
        "observed_value": observed_value, "period": rf.period, "run_id": rf.run_id, "run_type": rf.run_type,
        "payroll_area": rf.payroll_area, "row": frame.row(0, named=True) if frame.height == 1 else {},
    }
    description = catalog.render(meta["description"], ctx)
    if raised:
        message = str(exc.get("exception_message") or "unknown error").splitlines()[0][:300]
        observed = f"error: {message}"
        detail = f"Could not be checked ({message}): {description}"
    else:
        if meta.get("observed"):
            observed = catalog.render(meta["observed"], ctx, fallback="n/a")
        elif missing:
            observed = f"missing: {_fmt_list(missing, 20)}"
        elif observed_value is not None and "unexpected_count" not in res:
            observed = _fmt_list(observed_value, 20) if isinstance(observed_value, list) else str(observed_value)
        else:
            observed = f"{n_bad} of {ctx['element_count']}"
        detail = description if success else catalog.render(
            meta["finance_text"], ctx, fallback=f"Failed: {description} (observed: {observed}).")
    return {
        "name": meta["name"], "severity": meta["severity"], "success": success, "observed": observed,
        "unexpected_count": n_bad, "staff_affected": int(staff), "sample": ",".join(sample), "detail": detail,
        "engine": "gx", "suite": suite.name, "description": description,
    }
