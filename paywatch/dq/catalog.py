"""The expectation suites: JSON files kept in the repo (paywatch/dq/suites), loaded as data.

One file per frame (`meta.frame`, see `paywatch.dq.frames`): the ten extract files and the
run as a whole (`staff`, `stations`, `run`). Each file is a Great Expectations suite in GX's
own JSON form — `name`, `meta`, `expectations: [{type, kwargs, meta}]` — and every
expectation carries in its `meta`:

- `name`      stable id, unique over all suites (the check name stored in `dq_results`);
- `severity`  `critical` (a failure stops detection for the run) or `warning`;
- `description`  the rule in plain language;
- `finance_text` one sentence for Finance when it fails (placeholders, see `render`);
- optional `show_column` (values of this column among failing rows → `{values}`) and
  `observed` (template of the observed value).

The files are the source of truth: thresholds (`mostly`, `min_value`, ...) are edited there,
and the office may point Paywatch at its own copy (env `PAYWATCH_DQ_SUITES`, or
`[quality] suites_dir` in paywatch.toml). Their content hash is part of the configuration
version, so editing a suite re-verifies a run instead of reusing an earlier verification.
"""

from __future__ import annotations

import hashlib
import json
import os
import string
from dataclasses import dataclass
from pathlib import Path

from paywatch.dq.frames import FRAME_NAMES

SHIPPED_SUITES = Path(__file__).with_name("suites")
SUITES_ENV = "PAYWATCH_DQ_SUITES"
SEVERITIES = ("critical", "warning")


class SuiteError(ValueError):
    """A suite file that cannot be used (bad JSON, missing meta, unknown frame, ...)."""


@dataclass(frozen=True)
class Suite:
    name: str
    frame: str
    title: str
    key_columns: tuple[str, ...]
    staff_count_column: str | None
    expectations: tuple[dict, ...]
    document: dict  # the file's JSON, as GX reads it
    path: Path


def suites_dir(params: dict | None = None, base: Path | None = None) -> Path:
    """Where the suites are read from: env PAYWATCH_DQ_SUITES, else `[quality] suites_dir`
    (relative to `base`, the folder of paywatch.toml), else the suites shipped here."""
    env = os.environ.get(SUITES_ENV)
    if env:
        return Path(env)
    configured = (params or {}).get("suites_dir") or ""
    if configured:
        p = Path(configured)
        return p if p.is_absolute() or base is None else base / p
    return SHIPPED_SUITES


def suite_files(folder: Path) -> list[Path]:
    files = sorted(p for p in Path(folder).glob("*.json") if p.is_file())
    if not files:
        raise SuiteError(f"no expectation suites (*.json) in {folder}")
    return files


def suites_version(folder: Path) -> str:
    """Short hash of the suites' content (file names and bytes)."""
    h = hashlib.sha256()
    for p in suite_files(folder):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def load_suites(folder: Path) -> list[Suite]:
    """Every suite file of `folder`, checked: a malformed file is an error, never skipped."""
    suites, names = [], {}
    for path in suite_files(folder):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise SuiteError(f"{path}: not readable as JSON ({e})") from e
        meta = doc.get("meta") or {}
        frame = meta.get("frame")
        if frame not in FRAME_NAMES:
            raise SuiteError(f"{path}: meta.frame {frame!r} is not one of {', '.join(FRAME_NAMES)}")
        if not doc.get("name") or not isinstance(doc.get("expectations"), list) or not doc["expectations"]:
            raise SuiteError(f"{path}: a suite needs a name and at least one expectation")
        for i, exp in enumerate(doc["expectations"]):
            m = exp.get("meta") or {}
            where = f"{path}: expectation {i + 1} ({exp.get('type')})"
            if not isinstance(exp.get("type"), str) or not isinstance(exp.get("kwargs"), dict):
                raise SuiteError(f"{where}: needs a type and kwargs")
            if not m.get("name"):
                raise SuiteError(f"{where}: meta.name is missing")
            if m.get("severity") not in SEVERITIES:
                raise SuiteError(f"{where}: meta.severity must be one of {SEVERITIES}, got {m.get('severity')!r}")
            for key in ("description", "finance_text"):
                if not isinstance(m.get(key), str) or not m[key].strip():
                    raise SuiteError(f"{where}: meta.{key} (plain-language text) is missing")
            if m["name"] in names:
                raise SuiteError(f"{where}: meta.name {m['name']!r} is also used in {names[m['name']]}")
            names[m["name"]] = path.name
        suites.append(Suite(
            name=doc["name"], frame=frame, title=meta.get("title", frame),
            key_columns=tuple(meta.get("key_columns") or ()), staff_count_column=meta.get("staff_count_column"),
            expectations=tuple(doc["expectations"]), document=doc, path=path))
    frames = [s.frame for s in suites]
    if len(frames) != len(set(frames)):
        raise SuiteError(f"{folder}: two suites validate the same frame ({sorted(frames)})")
    return suites


def descriptions(suites: list[Suite]) -> dict[str, dict]:
    """meta.name -> {suite, title, severity, description (rendered with its thresholds)}."""
    out = {}
    for s in suites:
        for exp in s.expectations:
            m = exp["meta"]
            out[m["name"]] = {"suite": s.name, "frame": s.frame, "title": s.title, "severity": m["severity"],
                              "description": render(m["description"], threshold_context(exp["kwargs"]))}
    return out


# ------------------------------------------------------------------------------ templates

def _date_text(v) -> str | None:
    if isinstance(v, int) and 10000101 <= v <= 99991231:
        s = str(v)
        return f"{s[:4]}-{s[4:6]}-{s[6:]}"
    return None


def threshold_context(kwargs: dict) -> dict:
    """Placeholders about the expectation's own thresholds: min_value, max_value (and as
    dates: min_date, max_date), mostly, max_unexpected_share (= 1 - mostly)."""
    mostly = kwargs.get("mostly", 1.0)
    ctx = {"min_value": kwargs.get("min_value"), "max_value": kwargs.get("max_value"), "mostly": mostly,
           "max_unexpected_share": 1.0 - float(mostly if mostly is not None else 1.0)}
    ctx["min_date"] = _date_text(ctx["min_value"]) or ctx["min_value"]
    ctx["max_date"] = _date_text(ctx["max_value"]) or ctx["max_value"]
    return ctx


class _Missing(dict):
    def __missing__(self, key):
        raise KeyError(key)


def render(template: str, ctx: dict, fallback: str | None = None) -> str:
    """`template` with `{placeholder:format}` filled from ctx; on any missing or unformattable
    value, `fallback` (or the template's literal text without placeholders)."""
    try:
        return string.Formatter().vformat(template, (), _Missing(ctx))
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        if fallback is not None:
            return fallback
        return "".join(lit for lit, *_ in string.Formatter().parse(template)).strip()
