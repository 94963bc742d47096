"""Findings identical with and without the model cache (issue #17).

The committed sample (data_samples/gv-300, runs.txt order) is verified end to end with the
warehouse's model cache (the default); then every run's findings are computed again from
the warehouse with the cache disabled (every model fitted afresh) — the baseline — and with a
cold and a warm in-memory cache and the folder the verifications filled. exceptions.csv
(bytes) must be the same every way. Speed changes to detection keep this test green: it
compares what the detectors say, not how fast.
"""

from __future__ import annotations

import pickle
import shutil
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from detectors.base import DetectionInput, History, RunMeta
from detectors.config import config_version, defaults
from detectors.models import pw202_isolation
from detectors.models.cache import MemoryCache, fitted, fitted_state, frame_digest, model_key, run_digests
from detectors.config import Params
from paywatch import dq, pipeline, report
from paywatch.settings import load_settings
from paywatch.warehouse.models import ModelFolder, model_cache
from paywatch.warehouse.resource import Warehouse

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data_samples" / "gv-300"
RUNS = (SAMPLE / "runs.txt").read_text(encoding="utf-8").split()
# a forest that flags more staff than the shipped one (the sample has no PW202 finding with
# it), so that a model scoring differently from a fresh fit would change exceptions.csv
SENSITIVE = "[PW202]\nquantile = 0.99\nmargin = 1.0\n"


@pytest.fixture(scope="module")
def verified(tmp_path_factory):
    """The sample verified run by run into one warehouse (model cache on, as in production)."""
    home = tmp_path_factory.mktemp("identity")
    wh = Warehouse.in_folder(home / "wh")
    wh.paths.home.mkdir(parents=True)
    wh.paths.config.write_text(SENSITIVE, encoding="utf-8")
    for run in RUNS:
        res = pipeline.verify_run(SAMPLE / run, db=wh.db, out=home / "reports" / run)
        assert res.exit_code == 0, res.message
    return home, wh


def exceptions_bytes(con, run_id: str, cfg: dict, models, out: Path) -> bytes:
    """exceptions.csv of a run's findings detected again with the model cache `models`."""
    inp = replace(pipeline.detection_input(con, run_id), models=models)
    cfg = dq.with_suites_version(cfg, con)
    version = con.execute("SELECT max(version) FROM runs WHERE run_id = ?", [run_id]).fetchone()[0]
    cv = config_version(cfg)
    findings = pipeline.stage_triage(con, inp, pipeline.stage_detect(inp, cfg), version, cv)
    findings, _ = pipeline.stage_group_cases(con, inp, findings, version, cv, cfg)
    out.mkdir(parents=True, exist_ok=True)
    return report.write_exceptions(out, run_id, findings).read_bytes()


def test_findings_identical_with_and_without_the_cache(verified, tmp_path):
    home, wh = verified
    cfg = load_settings(wh.paths.config)
    memory = MemoryCache()
    folder = home / "wh" / "models"
    assert any(folder.glob("PW202-*.pickle")), "the verifications stored no fitted model"
    modelled = 0
    with wh.writer() as con:
        for run in RUNS:
            baseline = exceptions_bytes(con, run, cfg, None, tmp_path / "off" / run)
            assert (home / "reports" / run / "exceptions.csv").read_bytes() == baseline, run
            for name, cache in (("cold", memory), ("warm", memory), ("folder", ModelFolder(folder)),
                                ("warehouse", model_cache(con))):
                got = exceptions_bytes(con, run, cfg, cache, tmp_path / name / run)
                assert got == baseline, f"{run}: findings differ with the {name} cache"
            modelled += b",PW202," in baseline
    assert len(memory) > 0
    assert modelled, "no run of the sample has a PW202 finding: the comparison would not see the forest"


def test_a_damaged_cache_file_is_a_miss(verified, tmp_path):
    home, _ = verified
    copy = tmp_path / "models"
    shutil.copytree(home / "wh" / "models", copy)
    for f in copy.glob("*.pickle"):
        f.write_bytes(b"not a pickle")
    cache = ModelFolder(copy)
    key = next(copy.glob("*.pickle")).stem
    assert cache.get(key) is None
    model = fitted(cache, key, lambda: {"fitted": True})
    assert model == {"fitted": True}
    assert pickle.loads((copy / f"{key}.pickle").read_bytes()) == {"fitted": True}
    assert (copy / f"{key}.pickle").stat().st_mode & 0o777 == 0o600


def _runs(*versions: int) -> pl.DataFrame:
    return pl.DataFrame({"run_id": [f"GV-2026{m:02d}-FINAL" for m in range(1, len(versions) + 1)],
                         "version": list(versions)})


def test_a_correction_of_a_training_run_is_another_model():
    params = Params("PW202", defaults()["PW202"])
    lines = pl.DataFrame({"run_id": ["GV-202601-FINAL"], "pernr": ["10000001"], "amount_cents": [100]})
    key = model_key("PW202", params, _runs(1, 1, 1), frame_digest(lines))
    assert key == model_key("PW202", params, _runs(1, 1, 1), frame_digest(lines))
    assert key != model_key("PW202", params, _runs(1, 2, 1), frame_digest(lines))  # a new version
    corrected = lines.with_columns(pl.lit(101).alias("amount_cents"))
    assert key != model_key("PW202", params, _runs(1, 1, 1), frame_digest(corrected))  # other rows
    other = Params("PW202", defaults()["PW202"] | {"n_estimators": 50})
    assert key != model_key("PW202", other, _runs(1, 1, 1), frame_digest(lines))  # other parameters
    # row order is not content
    two = pl.DataFrame({"pernr": ["1", "2"], "amount_cents": [1, 2]})
    assert frame_digest(two) == frame_digest(two.reverse())
    assert frame_digest(two) != frame_digest(two.with_columns(pl.col("amount_cents") * 2))


def test_a_cached_forest_scores_as_the_one_just_fitted(verified):
    """The pickled model (as the folder keeps it) gives the same scores as a fresh fit."""
    home, wh = verified
    with wh.writer() as con:
        inp = pipeline.detection_input(con, RUNS[-1])
    params = Params("PW202", defaults()["PW202"])
    finals = inp.history.runs.filter(pl.col("run_type") == "FINAL")["run_id"].to_list()
    fresh = pw202_isolation.IsolationModel(params).fit(inp.history.final_lines, finals)
    assert fresh.fitted
    again = pickle.loads(pickle.dumps(fresh))
    x = pw202_isolation.staff_run_features(inp.history.final_lines).select(pw202_isolation.FEATURES).to_numpy()
    assert (again.decision_function(x) == fresh.decision_function(x)).all()
    assert again.threshold_ == fresh.threshold_
    # the direct scoring gives scikit-learn's floats exactly (and the rows it was fitted on)
    assert (fresh.decision_function(x) == -fresh.forest_.score_samples(x)).all()
    assert (fresh.decision_function(x[:7]) == -fresh.forest_.score_samples(x[:7])).all()


def test_run_digests_change_with_a_run_s_rows_only():
    """Each run's digest (the models' cache keys) is its rows' content: not their order, not
    another run's rows; a changed, added or removed row, or another column type, changes it."""
    lines = pl.DataFrame({"run_id": ["A", "A", "A", "B"], "pernr": ["1", "2", "2", "1"],
                          "amount_cents": [100, 200, 200, 300]})
    d = run_digests(lines)
    assert set(d) == {"A", "B"} and d["A"] != d["B"]
    assert run_digests(lines.reverse()) == d
    assert run_digests(lines.filter(pl.col("run_id") == "A")) == {"A": d["A"]}
    changed = lines.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(101).otherwise(pl.col("amount_cents"))
                                 .alias("amount_cents"))
    assert run_digests(changed)["A"] != d["A"] and run_digests(changed)["B"] == d["B"]
    assert run_digests(lines.head(3).vstack(lines.head(1)))["A"] != d["A"]  # a duplicate more
    assert run_digests(lines.slice(1))["A"] != d["A"]  # one of the two alike rows gone
    assert run_digests(lines.with_columns(pl.col("amount_cents").cast(pl.Int32)))["A"] != d["A"]
    assert run_digests(lines.head(0)) == {}


class _Fitted:
    def __init__(self, params):
        self.params = params

    def fit(self, calls: list):
        calls.append(1)
        self.level_ = pl.DataFrame({"x": [1.5]})
        return self


def test_a_model_s_fitted_state_is_kept_without_its_parameters(tmp_path):
    """`fitted_state`: the second model of a key gets the first one's state (through a folder:
    pickled), its own parameters, and is not fitted again."""
    params = Params("PW201", defaults()["PW201"])
    for make_cache in (lambda: (m := MemoryCache(), m), lambda: (ModelFolder(tmp_path), ModelFolder(tmp_path))):
        one, two = make_cache()
        calls: list = []
        first = fitted_state(one, "k", _Fitted(params), lambda m: m.fit(calls))
        again = fitted_state(two, "k", _Fitted(params), lambda m: m.fit(calls))
        assert len(calls) == 1 and again.params is params and "params" in vars(again)
        assert again.level_.equals(first.level_)
    calls = []
    fitted_state(None, "k", _Fitted(params), lambda m: m.fit(calls))
    fitted_state(None, "k", _Fitted(params), lambda m: m.fit(calls))
    assert len(calls) == 2


@pytest.mark.parametrize("iban, bank_country", [
    ("GB82WEST12345698765432", "GB"),   # valid, the bank's country: settled in polars
    ("GB82WEST12345698765432", "FR"),   # valid, another country's bank
    ("GB82WEST12345698765432", None),
    ("GB83WEST12345698765432", "GB"),   # check digits wrong
    ("GB82WEST1234569876543", "GB"),    # too short for GB
    ("GB82 WEST 1234 5698 7654 32", "GB"),
    ("gb82west12345698765432", "GB"),
    ("FR1420041010050500013M02606", "FR"),
    ("FR1420041010050500013M02607", "FR"),
    ("BE68539007547034", "BE"),         # a country with its own module: stdnum decides
    ("US12345678", "US"),
    ("CH9300762011623852957", "CH"),
    ("CH9300762011623852957", "ch"),
    ("", "GB"),
])
def test_vectorised_iban_check_never_passes_what_stdnum_rejects(iban, bank_country):
    from detectors.iban import surely_fine
    from detectors.rules.pw115_bank_integrity import iban_problem

    fine = surely_fine(pl.DataFrame({"iban": [iban], "bank_country": [bank_country]},
                                    schema={"iban": pl.String, "bank_country": pl.String}))[0]
    if fine:
        assert iban_problem(iban, bank_country) is None
    # the common case is settled without stdnum
    assert fine == (iban in ("GB82WEST12345698765432", "FR1420041010050500013M02606", "CH9300762011623852957")
                    and bank_country == iban[:2])


def test_the_history_of_earlier_finals_is_read_once_per_delivery(verified, tmp_path):
    """An earlier FINAL's lines and master data are kept in the process per delivery
    (paywatch/warehouse/kept.py): a second verify of the month reads them from the process,
    not from the warehouse, and another warehouse file reads its own."""
    from paywatch.warehouse import kept

    _, wh = verified
    run = RUNS[-1]
    one = Warehouse.at(shutil.copy(wh.db, tmp_path / "one.duckdb"))
    plus_one = ("UPDATE stg_pay_lines SET amount_cents = amount_cents + 1 WHERE run_id IN "
                "(SELECT run_id FROM runs WHERE run_type = 'FINAL')")
    kept.forget()
    with one.writer() as con:
        first = pipeline.detection_input(con, run).history
        assert first.final_lines.height > 0 and first.final_md
        # a delivery never changes once stored; changed behind the process's back here, to
        # show where the second read comes from
        con.execute(plus_one)
        again = pipeline.detection_input(con, run).history
    assert again.final_lines.equals(first.final_lines)  # kept, not read again
    assert set(again.final_md) == set(first.final_md)
    for fid, md in first.final_md.items():
        for table, frame in md.items():
            assert again.final_md[fid][table].equals(frame), (fid, table)
    kept.forget()
    with one.writer() as con:
        fresh = pipeline.detection_input(con, run).history  # read from the warehouse again
    assert (fresh.final_lines["amount_cents"] - first.final_lines["amount_cents"]).unique().to_list() == [1]
    # the fixture's own warehouse (other file, same deliveries) is read from its own file
    with wh.writer() as con:
        own = pipeline.detection_input(con, run).history
    assert own.final_lines.equals(first.final_lines)
    kept.forget()


def test_account_verdicts_kept_in_the_process_are_the_verdicts_computed_afresh():
    """PW115 keeps each account's verdict for the process (Verdicts): a pair asked again is
    answered from memory with the verdict a fresh computation gives, pairs it has not seen are
    computed, and past its cap it starts afresh without losing an answer."""
    from detectors.rules.pw115_bank_integrity import Verdicts, _verdicts

    pairs = pl.DataFrame({"iban": ["GB82WEST12345698765432", "GB83WEST12345698765432", "XX00NOTANIBAN",
                                   "BE68539007547034", None, "FR1420041010050500013M02607"],
                          "bank_country": ["GB", "GB", "CH", "BE", "GB", "FR"]})
    fresh = _verdicts(pairs).sort("iban", nulls_last=True)
    assert fresh.filter(pl.col("problem").is_not_null()).height >= 3  # the bad ones are refused
    memo = Verdicts(cap=4)
    first = memo.of(pairs.head(3)).sort("iban", nulls_last=True)
    assert first.equals(_verdicts(pairs.head(3)).sort("iban", nulls_last=True))
    calls = []
    import detectors.rules.pw115_bank_integrity as pw115

    original = pw115.account_problems
    pw115.account_problems = lambda *a: calls.append(a) or original(*a)
    try:
        both = memo.of(pairs).sort("iban", nulls_last=True)  # 3 known, 3 new: past the cap of 4
        again = memo.of(pairs.tail(3)).sort("iban", nulls_last=True)
    finally:
        pw115.account_problems = original
    assert both.equals(fresh)
    assert again.equals(fresh.filter(pl.col("iban").is_in(pairs.tail(3)["iban"].implode())
                                     | pl.col("iban").is_null()).sort("iban", nulls_last=True))
    # the first three were never asked again; the last three once (kept after the reset)
    assert {a[0] for a in calls} <= set(pairs.tail(3)["iban"].to_list()) and len(calls) <= 3


def test_the_digests_kept_with_the_history_are_those_detection_computes(verified):
    """The loader keeps each earlier FINAL's digest beside its lines (once per delivery): they
    are the digests detection computes from the lines, run for run; a history cut to some
    staff (a partition) has other rows and carries none."""
    from detectors import partition

    _, wh = verified
    with wh.reader() as con:
        for run_id in RUNS[-4:]:
            inp = pipeline.detection_input(con, run_id)
            if inp.history.final_lines.height == 0:
                continue
            assert inp.history.final_digests == run_digests(inp.history.final_lines)
            assert inp.history.final_digests  # there are FINALs before these runs
            for part in partition.split(inp).values():
                assert part.history.final_digests is None
