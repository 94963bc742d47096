"""Readers beside the writer: what publishing the readers' snapshot costs, and how fast a reader
opens it, on an existing warehouse (README, "Readers and the writer").

    uv run python benchmarks/bench_snapshot.py paywatch-data/warehouse.duckdb

Prints medians: an empty writer block (open, checkpoint, close, publish), the publish alone
(copy, fsync, rename), a reader's open + one query, the same on the live file, and the
alternative of `ATTACH` + `COPY FROM DATABASE` into a fresh file. Works on a copy of nothing:
it writes only `<db>.snapshot` and a scratch file next to the warehouse (removed).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import duckdb

from paywatch.warehouse import snapshot
from paywatch.warehouse.resource import Warehouse


def timed(f, n: int = 5) -> str:
    xs = []
    for _ in range(n):
        a = time.perf_counter()
        f()
        xs.append(time.perf_counter() - a)
    return f"median {statistics.median(xs) * 1000:.0f} ms (min {min(xs) * 1000:.0f}, max {max(xs) * 1000:.0f})"


def main(db: Path) -> None:
    wh = Warehouse.at(db)
    print(f"warehouse {db.stat().st_size / 1e6:.1f} MB")

    def empty_write():
        with wh.writer():
            pass

    def reader():
        with wh.reader() as con:
            con.execute("SELECT count(*) FROM findings").fetchall()

    def live():
        con = duckdb.connect(str(db), read_only=True)
        con.execute("SELECT count(*) FROM findings").fetchall()
        con.close()

    scratch = db.parent / f".{db.name}.copy-bench"

    def copy_from_database():
        scratch.unlink(missing_ok=True)
        con = duckdb.connect(str(db))
        name = con.execute("SELECT current_database()").fetchone()[0]
        con.execute(f"ATTACH '{scratch}' AS s; COPY FROM DATABASE {name} TO s; DETACH s")
        con.close()

    print("writer block, nothing written, incl. publish:", timed(empty_write))
    print("publish (copy + fsync + rename):", timed(lambda: snapshot.publish(db)))
    print("reader open + count(findings):", timed(reader, 10))
    print("live file read-only open + count (what readers no longer do):", timed(live, 10))
    try:
        print("alternative ATTACH + COPY FROM DATABASE:", timed(copy_from_database, 3))
    finally:
        scratch.unlink(missing_ok=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
