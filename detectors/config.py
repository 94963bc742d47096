"""Detector configuration: shipped defaults, overridden by the office's paywatch.toml."""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path

DEFAULTS_FILE = Path(__file__).with_name("defaults.toml")


def load_config(override: Path | None = None) -> dict:
    """Defaults merged with an override file (unknown detectors or keys are an error)."""
    cfg = tomllib.loads(DEFAULTS_FILE.read_text(encoding="utf-8"))
    if override is not None and override.exists():
        user = tomllib.loads(override.read_text(encoding="utf-8"))
        for section, values in user.items():
            if section not in cfg or not isinstance(values, dict):
                raise ValueError(f"{override}: unknown section [{section}]")
            for key, value in values.items():
                if key not in cfg[section]:
                    raise ValueError(f"{override}: unknown key {key!r} in [{section}]")
                cfg[section][key] = value
    return cfg


def config_version(cfg: dict) -> str:
    """Stable short hash of a configuration: stored with every finding."""
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:12]
