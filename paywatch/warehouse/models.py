"""Fitted detection models kept beside the warehouse (`<warehouse folder>/models/`), so that a
month's SIM2, SIM3 and FINAL — and a second process — score with the forest SIM1 fitted.

Grain: one private file per model key (`<key>.pickle`); keys are content-addressed by the
detectors (detectors/models/cache.py `model_key`: model code, parameters, training runs and
their rows), so a correction of a training run simply asks for another file. A process also
keeps the models it used in memory (`MemoryCache`): a long-lived worker reads each file once.
An unreadable file is a miss (the model is fitted again and the file rewritten). The folder
is a cache: deleting it loses nothing but time; at most `KEEP` files are kept, oldest go.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from pathlib import Path
from typing import Any

import duckdb

from detectors.models.cache import MemoryCache
from paywatch.paths import private_dir, write_private
from paywatch.warehouse.db import database_path

FOLDER = "models"
KEEP = 200  # files kept (a few per month: the pooled forest and one per peer group)
_FOLDERS: dict[Path, "ModelFolder"] = {}
# this process's models, shared by every folder (keys are content-addressed, so a model is
# the same whichever warehouse asked for it): memory stays bounded however many warehouses
_MEMORY = MemoryCache(64)


class ModelFolder:
    """A `ModelCache` (detectors/models/cache.py) backed by a folder, with this process's
    memory in front of it."""

    def __init__(self, folder: Path, memory: MemoryCache | None = None):
        self.folder = Path(folder)
        self.memory = memory if memory is not None else MemoryCache(64)

    def _file(self, key: str) -> Path:
        return self.folder / f"{key}.pickle"

    def get(self, key: str) -> Any | None:
        model = self.memory.get(key)
        if model is not None:
            return model
        try:
            with open(self._file(key), "rb") as fh:
                model = pickle.load(fh)  # noqa: S301 - our own private file (0600 in a 0700 folder)
        except FileNotFoundError:
            return None
        except Exception:  # noqa: BLE001 - a damaged or outdated file is a miss, never an error
            return None
        self.memory.put(key, model)
        return model

    def put(self, key: str, model: Any) -> None:
        self.memory.put(key, model)
        try:
            private_dir(self.folder)
            write_private(self._file(key), pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
            self._prune()
        except OSError:  # a full or read-only disk costs the next run a fit, nothing else
            pass

    def _prune(self) -> None:
        files = sorted(self.folder.glob("*.pickle"), key=lambda p: p.stat().st_mtime)
        for old in files[:-KEEP] if len(files) > KEEP else []:
            with contextlib.suppress(OSError):
                old.unlink()


def model_cache(con: duckdb.DuckDBPyConnection) -> ModelFolder | MemoryCache | None:
    """The model cache of the connection's warehouse: `<its folder>/models/`, one per folder
    per process (so a warm process keeps its memory); PAYWATCH_MODEL_CACHE=off: none."""
    if os.environ.get("PAYWATCH_MODEL_CACHE", "").lower() in ("off", "0", "false", "no"):
        return None
    db = database_path(con)
    if db is None:
        return _MEMORY
    folder = db.resolve().parent / FOLDER
    cache = _FOLDERS.get(folder)
    if cache is None:
        cache = _FOLDERS[folder] = ModelFolder(folder, _MEMORY)
    return cache
