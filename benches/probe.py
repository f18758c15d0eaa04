#!/usr/bin/env python3
"""Run one reader operation on one file in THIS process and print a JSON line:
{"reader", "op", "path", "ok", "error", "result", "seconds", "maxrss_kib" (VmHWM), "file_size"}.

    python3 benches/probe.py READER OP PATH [--mem-limit GiB]
OP: identify | full | bulk (bulk reads every page of ours' memory_ranges()).
Used for peak RSS (each reader and file in its own process) and to find out, safely,
whether a peer can read a file at all before it is benchmarked in-process (a peer that
tries to load a 64 GiB file into memory hits the address-space limit here instead).
"""

import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def hwm_kib() -> int:
    """Peak RSS of this process image (VmHWM). Not ru_maxrss: on Linux that keeps the parent's
    peak across fork+exec, so every child of a big parent would report the parent's size."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main():
    reader_name, op, path = sys.argv[1:4]
    if "--mem-limit" in sys.argv:
        gib = float(sys.argv[sys.argv.index("--mem-limit") + 1])
        lim = int(gib * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    import readers

    out = {
        "reader": reader_name,
        "op": op,
        "path": path,
        "ok": False,
        "error": None,
        "result": None,
        "file_size": os.stat(path).st_size,
    }
    base_rss = hwm_kib()
    t = time.perf_counter()
    try:
        r = readers.get(reader_name)
        out["import_maxrss_kib"] = hwm_kib()
        t = time.perf_counter()
        if op == "identify":
            out["result"] = r.identify(path)
        elif op == "full":
            out["result"] = r.full(path)
        elif op == "bulk":
            ranges = readers.Ours().ranges(path)
            n, crc = r.bulk(path, ranges)
            out["result"] = {"bytes": n, "crc32": crc}
        else:
            raise SystemExit(f"unknown op {op}")
        out["ok"] = True
    except MemoryError as e:
        out["error"] = (
            f"MemoryError (address space limited to {sys.argv[sys.argv.index('--mem-limit') + 1]} GiB)"
            if "--mem-limit" in sys.argv
            else f"MemoryError: {e}"
        )
    except BaseException as e:  # noqa: BLE001 - a peer failing is a result
        out["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:300]
    out["seconds"] = time.perf_counter() - t
    out["maxrss_kib"] = hwm_kib()
    out["start_maxrss_kib"] = base_rss
    print(json.dumps(out))


if __name__ == "__main__":
    main()
