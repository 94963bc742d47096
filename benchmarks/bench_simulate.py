"""How long `paywatch simulate` takes for a full year (prints numbers; not a test).

    uv run python benchmarks/bench_simulate.py [--staff 10000] [--months 12]
Also runs the independent line-by-line checker on the result and prints its summary.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--staff", type=int, default=10_000)
    ap.add_argument("--months", type=int, default=12)
    ap.add_argument("--check", action="store_true", help="also run the independent checker (slow)")
    args = ap.parse_args()
    from paywatch.simulate import SimConfig, simulate_to_folder

    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        runs = simulate_to_folder(SimConfig(staff=args.staff, months=args.months), Path(d))
        took = time.perf_counter() - t
        size = sum(f.stat().st_size for f in Path(d).rglob("*") if f.is_file()) / 1e6
        print(f"simulate staff={args.staff} months={args.months}: {len(runs)} runs in {took:.1f} s, "
              f"{size:.0f} MB written, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        if args.check:
            from independent_checker import check_simulation

            t = time.perf_counter()
            report = check_simulation(Path(d))
            print(report.summary())
            print(f"independent checker: {time.perf_counter() - t:.1f} s, mismatches {len(report.mismatches)}")


if __name__ == "__main__":
    main()
