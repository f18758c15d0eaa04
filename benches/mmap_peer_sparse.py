#!/usr/bin/env python3
"""Every page of an ELF dump read by libkdumpfile (Debian python3-libkdumpfile), 1 MiB per
kdump read of MACHPHYSADDR, over the PT_LOAD ranges our reader reports; prints seconds and bytes.
Run with the system python (where python3-libkdumpfile is installed):

    /usr/bin/python3 benches/mmap_peer_sparse.py bench-data/64G/qemu-elf-sparse.core RANGES_JSON
"""

import json
import sys
import time

import kdumpfile

path, ranges = sys.argv[1], json.loads(sys.argv[2])
k = kdumpfile.kdumpfile(path)
CHUNK = 1 << 20
t = time.perf_counter()
total = 0
for s, e in ranges:
    a = s
    while a < e:
        n = min(CHUNK, e - a)
        total += len(k.read(kdumpfile.KDUMP_MACHPHYSADDR, a, n))
        a += n
print(json.dumps({"seconds": time.perf_counter() - t, "bytes": total}))
