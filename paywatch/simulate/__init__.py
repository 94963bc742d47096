"""Simulated Umoja: a payroll area with life events, runs and injected errors."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from paywatch.paths import private_dir, write_private
from paywatch.simulate.engine import RunOutput, SimConfig, Simulation
from paywatch.simulate.writer import write_run, write_truth

__all__ = ["SimConfig", "Simulation", "RunOutput", "simulate_to_folder"]


def simulate_to_folder(cfg: SimConfig, out_dir: Path, on_run: Callable[[RunOutput], None] | None = None) -> list[str]:
    """Write every run, runs.txt and truth.csv (docs/cli-contract.md); returns the run ids."""
    private_dir(out_dir)  # the runs hold names and bank accounts
    sim = Simulation(cfg)
    names, truth = [], []
    for out in sim.iter_runs():
        names.append(write_run(out, out_dir).name)
        truth.extend(sorted(out.truth, key=lambda t: (t[1], t[2])))
        if on_run:
            on_run(out)
    write_private(out_dir / "runs.txt", "".join(n + "\n" for n in names).encode("utf-8"))
    write_truth(truth, out_dir / "truth.csv")
    return names
