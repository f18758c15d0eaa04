#!/usr/bin/env python3
"""Every page of a dump read by vmcoreinfo, 1 MiB `read_phys_into` per call over
`memory_ranges()`; prints seconds, CPU seconds and bytes as JSON, and writes the ranges to
RANGES_OUT for benches/mmap_peer_sparse.py (libkdumpfile over the same ranges):

    python benches/sparse_every_page.py bench-data/64G/qemu-elf-sparse.core /tmp/ranges.json
    /usr/bin/python3 benches/mmap_peer_sparse.py bench-data/64G/qemu-elf-sparse.core "$(cat /tmp/ranges.json)"
"""

import json
import sys
import time
from pathlib import Path

import vmcoreinfo

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_mmap_io import every_byte  # noqa: E402  (the 1 MiB read_phys_into loop)

path, ranges_out = sys.argv[1], sys.argv[2]
with vmcoreinfo.open(path) as d:
    ranges = d.memory_ranges()
t, c = time.perf_counter(), time.process_time()
total = every_byte(Path(path), True)
took = {"seconds": round(time.perf_counter() - t, 2), "cpu": round(time.process_time() - c, 2), "bytes": total}
print(json.dumps({"reader": "vmcoreinfo", **took}))
with open(ranges_out, "w") as f:
    json.dump([list(r) for r in ranges], f)
