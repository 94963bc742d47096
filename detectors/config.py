"""Detector configuration, after sqlfluff: every detector declares its keys once (`Key`),
the defaults live in one file (defaults.toml), and the office's paywatch.toml is validated
against the declarations before anything runs.

`detectors.registry.load_config(override, sections)` merges defaults.toml with the override and refuses an
unknown section, an unknown key or a wrong type with a one-line `ConfigError` naming the
file, the section and the key. Sections that are not detectors' (lifecycle, calendar, ...)
are declared by the application (paywatch/settings.py) and passed in as `sections`.
Detectors receive a `Params`: read-only, attribute access, no defaults of their own.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")
SEVERITIES = ("hold", "review", "info")


class ConfigError(ValueError):
    """A configuration file that does not match the declarations; the message is one line."""


_TYPE_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


@dataclass(frozen=True)
class Key:
    """One configuration key: its name, type (bool, int, float, str or list[str]) and meaning.
    The default is in defaults.toml, the one home of defaults."""

    name: str
    type: Any
    meaning: str
    choices: tuple = ()

    def type_name(self) -> str:
        if typing.get_origin(self.type) is list:
            return f"a list of {_TYPE_NAMES[typing.get_args(self.type)[0]].removeprefix('a ')}s"
        return _TYPE_NAMES[self.type]

    def accepts(self, value: Any) -> bool:
        if typing.get_origin(self.type) is list:
            item = typing.get_args(self.type)[0]
            return isinstance(value, list) and all(_is(v, item) for v in value)
        return _is(value, self.type) and (not self.choices or value in self.choices)

    def problem(self, value: Any) -> str | None:
        """Why `value` is not acceptable (None when it is)."""
        if self.accepts(value):
            return None
        want = f"one of {', '.join(map(repr, self.choices))}" if self.choices and _is(value, self.type) \
            else self.type_name()
        return f"{self.name} must be {want}, got {json.dumps(value, default=str)}"


def _is(value: Any, t: type) -> bool:
    if isinstance(value, bool):  # bool is an int in Python, not in a config file
        return t is bool
    if t is float:
        return isinstance(value, (int, float))
    return isinstance(value, t)


ENABLED = Key("enabled", bool, "run this detector")
SEVERITY = Key("severity", str, "severity of its findings: hold | review | info", SEVERITIES)


class Params:
    """Validated parameters of one detector, read-only: `params.threshold` (or
    `params["threshold"]`). A key that was not declared is an error, never a default."""

    __slots__ = ("code", "_values")

    def __init__(self, code: str, values: Mapping[str, Any]):
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str) -> Any:
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        raise AttributeError(f"[{object.__getattribute__(self, 'code')}] has no configuration key {name!r}")

    def __getitem__(self, name: str) -> Any:
        if name not in self._values:
            raise KeyError(f"[{self.code}] has no configuration key {name!r}")
        return self._values[name]

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("detector parameters are read-only")

    def __repr__(self) -> str:
        return f"Params({self.code}, {self._values!r})"

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)


def params_for(code: str, keys: Sequence[Key], values: Mapping[str, Any], where: str = "config") -> Params:
    """`values` checked against `keys` (all present, none unknown, right types) as Params."""
    check_section(code, keys, values, where, partial=False)
    return Params(code, values)


def check_section(section: str, keys: Sequence[Key], values: Any, where: str, partial: bool = True) -> None:
    """Raise ConfigError (one line) for an unknown key, a wrong type or (unless `partial`) a
    missing key of one section."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: [{section}] must be a table of keys, got {json.dumps(values, default=str)}")
    declared = {k.name: k for k in keys}
    for name, value in values.items():
        if name not in declared:
            raise ConfigError(f"{where}: [{section}] unknown key {name!r} (known: {', '.join(declared)})")
        problem = declared[name].problem(value)
        if problem:
            raise ConfigError(f"{where}: [{section}] {problem}")
    if not partial:
        missing = [n for n in declared if n not in values]
        if missing:
            raise ConfigError(f"{where}: [{section}] missing key {missing[0]!r}")


def defaults() -> dict:
    """defaults.toml as shipped."""
    return tomllib.loads(DEFAULTS_FILE.read_text(encoding="utf-8"))


# Sections that only say how results are reported, scheduled or judged: editing them must not
# make every run's findings a new version (they do not change what is detected).
NOT_DETECTION = frozenset({"kpi", "evaluation", "calendar", "lifecycle"})


def config_version(cfg: dict) -> str:
    """Stable short hash of the configuration that shapes findings: stored with every finding."""
    shaping = {k: v for k, v in cfg.items() if k not in NOT_DETECTION}
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:12]
