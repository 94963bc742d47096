"""Fitted models reused between runs that share a training set (pure: no storage here).

A month's SIM1, SIM2, SIM3 and FINAL are all trained on the same earlier FINALs, so a model
fitted once can score all four. A detector asks `fitted(cache, key, fit)`: the cache's model
when it holds `key`, else `fit()` (stored under `key`). The key is content-addressed
(`model_key`): the model's code (these source files, scikit-learn and polars versions), the
detector's parameters, the training runs (run id + version) and a digest of the training
rows themselves — a correction of a training run (a new version, new lines) is a new key, so
a stale model is never found, only left unused. Where models live is the caller's business
(`DetectionInput.models`: paywatch keeps them beside the warehouse); `None` = no cache.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Protocol

import polars as pl

_HERE = Path(__file__).resolve().parent
# the code a fitted model depends on: a change to any of it is a new model
_SOURCES = ("cache.py", "context.py", "features.py", "pw201_overtime.py", "pw202_isolation.py",
            "pw203_variable_pay.py", "../context.py", "../history.py", "../paymodel.py")


class ModelCache(Protocol):
    """Where fitted models are kept: `get` returns None for an unknown (or unreadable) key."""

    def get(self, key: str) -> Any | None: ...

    def put(self, key: str, model: Any) -> None: ...


class MemoryCache:
    """Models of this process, most recently used kept (`size` of them)."""

    def __init__(self, size: int = 64):
        self.size = size
        self._items: OrderedDict[str, Any] = OrderedDict()

    def get(self, key: str) -> Any | None:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        return None

    def put(self, key: str, model: Any) -> None:
        self._items[key] = model
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def _code_version() -> str:
    import sklearn  # noqa: PLC0415 - the fitted forests are its objects

    h = hashlib.sha256(f"sklearn {sklearn.__version__} polars {pl.__version__}".encode())
    for name in _SOURCES:
        h.update((_HERE / name).read_bytes())
    return h.hexdigest()[:16]


_CODE: str | None = None


def code_version() -> str:
    """Digest of the model code (computed once per process)."""
    global _CODE
    if _CODE is None:
        _CODE = _code_version()
    return _CODE


_SOURCE_DIGESTS: dict[str, str] = {}


def source_digest(fn: Callable) -> str:
    """Digest of the source file that defines `fn` (a value cached from it is another when
    that code changes), read once per process."""
    path = fn.__code__.co_filename
    if path not in _SOURCE_DIGESTS:
        _SOURCE_DIGESTS[path] = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    return _SOURCE_DIGESTS[path]


def frame_digest(frame: pl.DataFrame) -> str:
    """Digest of a frame's content, independent of its row order (rows hashed, sorted).
    A column's order and type count; its name too."""
    h = hashlib.sha256(json.dumps([[n, str(t)] for n, t in frame.schema.items()]).encode())
    h.update(str(frame.height).encode())
    if frame.height:
        for seed in (0, 1):  # two independent 64-bit row hashes: 128 bits per row
            h.update(frame.hash_rows(seed=seed).sort().to_numpy().tobytes())
    return h.hexdigest()


def run_digests(lines: pl.DataFrame) -> dict[str, str]:
    """Digest of each run's rows in `lines` (a frame with `run_id`), independent of their
    order, all runs in one pass: per run, the row count and the sums of two independent 64-bit
    row hashes (each sum taken over the hashes' 32-bit halves, so no sum overflows) — a
    multiset hash: another row, a row more or less, changes it. A column's order, type and
    name count too."""
    if lines.height == 0:
        return {}
    schema = json.dumps([[n, str(t)] for n, t in lines.schema.items()])
    low = pl.lit(0xFFFFFFFF, dtype=pl.UInt64)
    sums = (lines.select("run_id", lines.hash_rows(seed=0).alias("_h0"), lines.hash_rows(seed=1).alias("_h1"))
            .group_by("run_id").agg(pl.len().alias("_n"),
                                    *[e for h in ("_h0", "_h1") for e in
                                      ((pl.col(h) & low).sum().alias(f"{h}l"), (pl.col(h) // (1 << 32)).sum().alias(f"{h}h"))]))
    return {r[0]: hashlib.sha256(f"{schema}|{'|'.join(map(str, r[1:]))}".encode()).hexdigest()
            for r in sums.iter_rows()}


def model_key(code: str, params, training: pl.DataFrame, *parts: str) -> str:
    """Key of a model: detector code, model code, parameters (`params.as_dict()`), training runs
    (`training`: run_id, version) and further parts (digests of the training rows, a group)."""
    p = params.as_dict() if hasattr(params, "as_dict") else dict(params)
    runs = [[r, v] for r, v in training.select("run_id", "version").iter_rows()] if training.height else []
    doc = json.dumps({"detector": code, "code": code_version(), "params": p, "runs": runs, "parts": list(parts)},
                     sort_keys=True, default=str)
    return f"{code}-{hashlib.sha256(doc.encode()).hexdigest()[:32]}"


def fitted_state(cache: ModelCache | None, key: str, model: Any, fit: Callable[[Any], Any],
                 own: tuple[str, ...] = ("params",)) -> Any:
    """`model` (as constructed, not fitted) fitted by `fit(model)`, or given the state a model
    fitted under `key` had: its attributes, less `own` (the constructor's parameters, which
    the key already names and which need not pickle). For models that keep their parameters."""
    if cache is None:
        fit(model)
        return model
    state = cache.get(key)
    if state is None:
        fit(model)
        state = {k: v for k, v in vars(model).items() if k not in own}
        cache.put(key, state)
    else:
        vars(model).update(state)
    return model


def fitted(cache: ModelCache | None, key: str, fit: Callable[[], Any]) -> Any:
    """The model under `key` in `cache`, or `fit()` (then kept there)."""
    if cache is None:
        return fit()
    model = cache.get(key)
    if model is None:
        model = fit()
        cache.put(key, model)
    return model
