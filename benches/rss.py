#!/usr/bin/env python3
"""Peak RSS per reader and file, each (reader, op, file) in its own process (benches/probe.py,
VmHWM). Writes a JSON list to the path given (default stdout).

    python3 benches/rss.py [OUT.json]
ops: identify (open + the five values) on every input; bulk (every page of ours'
memory_ranges()) on the ELF and kdump-zlib inputs for ours and libkdumpfile.
Each probe runs under an address-space limit (BENCH_RSS_MEM_GIB, default 12) so that a
reader that loads a whole 64 GiB file fails with MemoryError instead of taking the machine.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import inputs  # noqa: E402
import readers  # noqa: E402

MEM = os.environ.get("BENCH_RSS_MEM_GIB", "12")
TIMEOUT = float(os.environ.get("BENCH_RSS_TIMEOUT", "600"))


def run(reader, op, path):
    cmd = [sys.executable, str(HERE / "probe.py"), reader, op, path, "--mem-limit", MEM]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
        line = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
        if line.startswith("{"):
            return json.loads(line)
        return {"reader": reader, "op": op, "path": path, "ok": False, "error": f"exit {p.returncode}: {p.stderr.strip()[-200:]}"}
    except subprocess.TimeoutExpired:
        return {"reader": reader, "op": op, "path": path, "ok": False, "error": f"timeout after {TIMEOUT:.0f} s"}


def main():
    ok, missing = readers.available()
    out = []
    for input_id, path, fmt, mem in inputs.inputs():
        for name in ok:
            r = run(name, "identify", path)
            r.update(input=input_id, format=fmt, memory=mem)
            out.append(r)
            print(
                f"rss identify {input_id:24s} {name:20s} {r.get('maxrss_kib', 0) / 1024:9.1f} MiB "
                f"{'ok' if r['ok'] else 'FAIL ' + str(r['error'])[:60]}",
                file=sys.stderr,
            )
    bulk_inputs = [i for i in inputs.inputs() if i[2] in ("elf", "kdump") and "md-" not in i[0]]
    for input_id, path, fmt, mem in bulk_inputs:
        for name in ("vmcoreinfo", "libkdumpfile", "libkdumpfile-debian"):
            if name not in ok:
                continue
            r = run(name, "bulk", path)
            r.update(input=input_id, format=fmt, memory=mem)
            out.append(r)
            print(
                f"rss bulk     {input_id:24s} {name:20s} {r.get('maxrss_kib', 0) / 1024:9.1f} MiB "
                f"{r.get('seconds', 0):7.1f} s {'ok' if r['ok'] else 'FAIL ' + str(r['error'])[:60]}",
                file=sys.stderr,
            )
    text = json.dumps(out, indent=1)
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
