"""identify_many's rate on a corpus, for A/B runs of two builds outside pytest (benches/NOTES.md):

    python benches/batch_rate.py bench-data/corpus-10000 THREADS ROUNDS

prints the best and median files/s over the rounds and the process CPU per file. To compare two
wheels, install each with `pip install --no-deps --target DIR` and alternate
`PYTHONPATH=DIR python benches/batch_rate.py ...` between them in one shell loop; pin with
`taskset -c 0` for the one-core rate."""

from __future__ import annotations

import os
import statistics
import sys
import time

import vmcoreinfo


def main() -> None:
    root, threads, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if "-" in f)
    for p in paths:  # into the page cache
        with open(p, "rb") as f:
            f.read()
    wall, cpu = [], []
    for _ in range(rounds):
        c, t = time.process_time(), time.perf_counter()
        res = list(vmcoreinfo.identify_many(paths, threads=threads))
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        assert len(res) == len(paths) and all(r.ok for r in res)
    print(
        f"threads={threads} files={len(paths)} best {len(paths) / min(wall):,.0f} files/s, "
        f"median {len(paths) / statistics.median(wall):,.0f} files/s, "
        f"CPU per file {statistics.median(cpu) / len(paths) * 1e6:.2f} us"
    )


if __name__ == "__main__":
    main()
